"""What both LoRA trainers share: config, input checks, the training loop, checkpoints,
LoRA files.

A trainer (style, motion) is a schema of options plus a `Task`: the models holding the
LoRA layers, their parameter groups, a dataset size, `load_batch` and `loss`. This
module does the rest, the same way for both:

- config: `Option` schemas, `load_config(schema, path, overrides)` (TOML file, then
  flags), `add_flags`/`overrides_from_args` for argparse; every check that needs no
  model (`check_data_dir`, `check_model`, `check_output`, `find_checkpoint`) runs before
  any model is loaded, so bad input costs a second, not a model load.
- the loop: `train(cfg, build_task, ...)` runs through accelerate's Accelerator (so
  `accelerate launch -m lofid train ...` is data parallel on several GPUs, and one
  GPU or the CPU work without the launcher); gradient accumulation, mixed precision,
  warm-up + constant/linear/cosine learning rate, gradient clipping; a progress line on
  stderr (step, smoothed loss, it/s, ETA); losses.jsonl; validation every N steps.
- checkpoints: every N steps, at the end and on Ctrl-C (then exit code 130), into
  TRAIN_DIR/checkpoints/step-NNNNNN/: the trainable weights, the optimizer, the
  learning-rate schedule, the step and every random state (python, numpy, torch, CUDA,
  the loop's own generator). The data order is a pure function of (seed, sample
  position), so `--resume` continues with the same batches and the same noise: on the
  CPU its losses equal an uninterrupted run's exactly.
- LoRA files: `save_kohya_lora` writes peft LoRA layers with kohya names (lora_unet_...,
  lora_te_..., .lora_down/.lora_up/.alpha) and kohya metadata: the layout ComfyUI,
  A1111 and lofid's own `--lora` load.

Only the standard library (and lofid.settings, itself only that) is imported at module level.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lofid.settings import schema as _schema
from lofid.settings.schema import BadValue, Option, coerce, defaults, overrides_from_args  # noqa: F401

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
LR_SCHEDULES = ("constant", "linear", "cosine")
LOSSES_FILE = "losses.jsonl"
CHECKPOINTS = "checkpoints"
EXIT_INTERRUPTED = 130

# Keys that may differ between a run and its resumption: they do not change what is
# computed at any step (how long, how often to save or look, where to write).
RESUME_MAY_CHANGE = {"steps", "checkpoint_every", "keep_checkpoints", "validation_every",
                     "validation_prompts", "validation_steps", "output", "output_spatial",
                     "data", "model", "motion_adapter", "mixed_precision", "resume", "progress"}


def _bad(message: str):
    from lofid.errors import UserError as BadInput
    return BadInput(message)


# =========================================================================== config

# A trainer's options are described as lofid's all are (lofid.settings.schema: Option,
# defaults, overrides_from_args); its messages name the file or flag, the key, the
# value and what was expected.

def check_value(opt: Option, value: Any, where: str) -> Any:
    """`value` as `opt` holds it, or BadInput naming the key, the value and what was expected."""
    try:
        return coerce(opt, value)
    except BadValue as e:
        raise _bad(f"{where}: {opt.name} = {value!r} is not valid: expected {e.expected}") from None


def read_toml(path) -> dict:
    """A TOML file as a dict; BadInput when it is missing or malformed."""
    try:
        import tomllib
    except ModuleNotFoundError:       # Python 3.10
        import tomli as tomllib
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise _bad(f"--config {str(path)!r}: no such file (expected a TOML config file)") from None
    except IsADirectoryError:
        raise _bad(f"--config {str(path)!r} is a folder: expected a TOML config file") from None
    except tomllib.TOMLDecodeError as e:
        raise _bad(f"--config {str(path)!r} is not valid TOML: {e}") from None


def load_config(schema, path=None, overrides=None) -> dict:
    """Defaults, then the TOML file at `path` (if any), then `overrides` (flags), checked.

    An unknown key, a value of the wrong type or out of range, or a required key that is
    missing raises BadInput naming the key, the value and what was expected (with the
    closest known key for a typo).
    """
    by_name = {o.name: o for o in schema}
    cfg = defaults(schema)
    if path is not None:
        data = read_toml(path)
        where = str(path)
        for key, value in data.items():
            opt = by_name.get(key)
            if opt is None:
                close = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                if isinstance(value, dict):
                    hint += " (tables are not used: keys go at the top level)"
                raise _bad(f"{where}: config key {key!r} is not known{hint}; "
                           f"expected one of: {', '.join(sorted(by_name))}")
            cfg[key] = check_value(opt, value, where)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        opt = by_name.get(key)
        if opt is None:
            raise _bad(f"option {key!r} is not known: expected one of {', '.join(sorted(by_name))}")
        cfg[key] = check_value(opt, value, opt.flag_name if opt.flag else key)
    missing = [o for o in schema if cfg[o.name] is None]
    if missing:
        o = missing[0]
        flag = f"{o.flag_name} or " if o.flag else ""
        raise _bad(f"{o.name} is not set: give {flag}{o.name} = ... in the --config file ({o.help})")
    return cfg


def add_flags(parser, schema) -> None:
    """argparse flags for the schema's options (bools both ways, --x and --no-x), each
    defaulting to None (= not given) and saying its default."""
    _schema.add_flags(parser, schema, default_in_help=True)


def autocast(ctx):
    """Validation renders in the training's number format (a no-op in fp32)."""
    import contextlib
    import torch
    if ctx.weight_dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(ctx.device.type, dtype=ctx.weight_dtype)


def start_or_resume(cfg: dict, output, resume: str | None):
    """(the run's training folder, the checkpoint to go on from or None): with
    --resume the checkpoint must fit this config; without it, no earlier run of
    this output may be overwritten."""
    train_dir = train_dir_for(output)
    if resume:
        checkpoint = find_checkpoint(resume, train_dir)
        check_resume(cfg, checkpoint)
        return train_dir, checkpoint
    check_fresh_start(train_dir)
    return train_dir, None


def output_options(prompts: list[str], what: str, prompts_help: str,
                   save_help: str) -> list[Option]:
    """What a trainer saves and how it shows its progress: the saved LoRA's number
    format and the validation renders (`what`: "clips", "pictures")."""
    return [
        Option("save_precision", str, "fp16", save_help, choices=("fp16", "bf16", "fp32")),
        Option("validation_prompts", list, prompts, prompts_help),
        Option("validation_steps", int, 20, f"denoising steps of each validation {what[:-1]}",
               minimum=1, maximum=200),
        Option("guidance", float, 7.5, f"classifier-free guidance of the validation {what}",
               minimum=1.0, maximum=30.0),
    ]


def add_arguments(parser, schema, example: str) -> None:
    """A trainer's command line: --config (`example` names a sample file), --resume,
    and a flag for every option of its schema."""
    parser.add_argument("--config", metavar="FILE",
                        help=f"a TOML file with any of the keys below ({example})")
    parser.add_argument("--resume", metavar="latest|FOLDER",
                        help="go on from a checkpoint: 'latest' (of this --output's run) or a folder")
    add_flags(parser, schema)


def loop_options(**defaults_) -> list[Option]:
    """The options `train()` reads, with per-trainer defaults given as keywords."""
    d = dict(steps=3000, batch_size=1, grad_accum=1, lr_schedule="cosine", warmup_steps=100,
             mixed_precision="auto", seed=0, checkpoint_every=500, keep_checkpoints=3,
             validation_every=500, max_grad_norm=1.0, weight_decay=1e-2)
    unknown = set(defaults_) - set(d)
    if unknown:
        raise TypeError(f"loop_options: unknown keys {sorted(unknown)}")
    d.update(defaults_)
    return [
        Option("steps", int, d["steps"], "optimizer steps to train", minimum=1, maximum=1_000_000),
        Option("batch_size", int, d["batch_size"], "samples per step on each GPU", minimum=1, maximum=256),
        Option("grad_accum", int, d["grad_accum"],
               "batches whose gradients add up to one step (a larger batch in the same memory)",
               minimum=1, maximum=256),
        Option("lr_schedule", str, d["lr_schedule"], "learning-rate curve after the warm-up",
               choices=LR_SCHEDULES),
        Option("warmup_steps", int, d["warmup_steps"],
               "steps over which the learning rate rises from 0", minimum=0, maximum=1_000_000),
        Option("mixed_precision", str, d["mixed_precision"],
               "auto: bf16 on GPUs that have it, else fp16; no on the CPU", choices=MIXED_PRECISION),
        Option("seed", int, d["seed"], "seed of the LoRA's start, the data order and the noise",
               minimum=0, maximum=2**32 - 1),
        Option("checkpoint_every", int, d["checkpoint_every"],
               "save a resumable checkpoint every N steps (0: only at the end and on Ctrl-C)",
               minimum=0, maximum=1_000_000),
        Option("keep_checkpoints", int, d["keep_checkpoints"],
               "checkpoints kept (the oldest are deleted)", minimum=1, maximum=1000),
        Option("validation_every", int, d["validation_every"],
               "render the validation prompts every N steps (0: only at the end)",
               minimum=0, maximum=1_000_000),
        Option("max_grad_norm", float, d["max_grad_norm"],
               "clip the gradient norm to this (0: no clipping)", minimum=0.0, maximum=1e6),
        Option("weight_decay", float, d["weight_decay"], "AdamW weight decay",
               minimum=0.0, maximum=1.0),
    ]


# =========================================================================== input checks

def check_data_dir(path, what: str = "--data", suffixes=IMAGE_SUFFIXES, need: str | None = None) -> Path:
    """The data folder, or BadInput when it is missing, not a folder, or holds no file
    with one of `suffixes` (or no `need` file, such as manifest.json, when given)."""
    if path in (None, ""):
        raise _bad(f"{what} is not set: expected a folder of training data")
    p = Path(path).expanduser()
    if not p.exists():
        raise _bad(f"{what} {str(p)!r}: no such folder (expected a folder of training data)")
    if not p.is_dir():
        raise _bad(f"{what} {str(p)!r} is not a folder (expected a folder of training data)")
    if need is not None:
        if not (p / need).is_file():
            raise _bad(f"{what} {str(p)!r} has no {need} (expected a folder made by `lofid prepare`)")
        return p
    if not any(f.suffix.lower() in suffixes for f in p.iterdir() if f.is_file()):
        raise _bad(f"{what} {str(p)!r} holds no {'/'.join(suffixes)} files: expected "
                   "training data (see `lofid prepare`)")
    return p


def check_model(path, what: str = "--model"):
    """The SD1.5 checkpoint at `path` (a folder, a file, or a name lofid.models finds
    among the model folders) as a ModelRef, from configs or file headers only; BadInput
    when it is not a checkpoint lofid recognises."""
    from lofid import models

    if path in (None, ""):
        raise _bad(f"{what} is not set: expected a diffusers folder or a single-file SD1.5 checkpoint")
    try:
        if Path(str(path)).expanduser().exists():
            ref = models.describe(path)
        else:
            ref = models.find("checkpoint", str(path))
    except models.ModelError as e:
        raise _bad(f"{what}: {e}") from None
    if ref.kind != "checkpoint":
        raise _bad(f"{what} {str(path)!r} is a {ref.kind}: expected a base model (a diffusers "
                   "folder or a single-file SD1.5 checkpoint)")
    family = models.checkpoint_family(ref.path)
    if family != "sd15":
        raise _bad(f"{what} {str(path)!r} is an {models.family_name(family)} checkpoint: "
                   "expected an SD1.5-family checkpoint")
    if ref.format != "diffusers":
        try:    # a single file takes its configs from a diffusers folder: find it now
            models.config_folder_for(ref)
        except models.ModelError as e:
            raise _bad(f"{what}: {e}") from None
    return ref


def check_output(path, what: str = "--output", suffix: str = ".safetensors") -> Path:
    """Where the LoRA goes: a .safetensors path whose folder exists or can be made."""
    if path in (None, ""):
        raise _bad(f"{what} is not set: expected a FILE{suffix} to write the LoRA to")
    p = Path(path).expanduser()
    if p.suffix.lower() != suffix:
        raise _bad(f"{what} {str(p)!r} does not end in {suffix}: expected FILE{suffix}")
    if p.is_dir():
        raise _bad(f"{what} {str(p)!r} is a folder: expected FILE{suffix}")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise _bad(f"{what} {str(p)!r}: cannot write into {str(parent)!r}")
    return p


def train_dir_for(output: Path) -> Path:
    """The run's folder beside the LoRA: FILE.safetensors -> FILE.training/ (checkpoints,
    losses.jsonl, validation sheets, the effective config)."""
    return output.with_suffix(".training")


def list_checkpoints(train_dir: Path) -> list[Path]:
    """Complete checkpoints in a run folder, oldest first."""
    folder = Path(train_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    done = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-")
            and not p.name.endswith(".partial") and (p / "state.json").is_file()]
    return sorted(done, key=lambda p: p.name)


def find_checkpoint(resume: str, train_dir: Path) -> Path:
    """The checkpoint folder `--resume` names: "latest" (the run folder's newest), a
    checkpoint folder, or a run folder (its newest); BadInput when there is none."""
    if resume == "latest":
        found = list_checkpoints(train_dir)
        if not found:
            raise _bad(f"--resume latest: no checkpoint in {str(train_dir)!r} "
                       "(expected a run that saved one; run without --resume to start)")
        return found[-1]
    p = Path(resume).expanduser()
    if (p / "state.json").is_file():
        return p
    found = list_checkpoints(p)
    if found:
        return found[-1]
    raise _bad(f"--resume {resume!r}: not a checkpoint folder or a run folder with "
               "checkpoints (expected 'latest', .../checkpoints/step-NNNNNN or FILE.training)")


def check_resume(cfg: dict, checkpoint: Path) -> int:
    """The checkpoint's step; BadInput when the checkpoint was made with settings that
    change what is computed (rank, learning rate, batch, seed...)."""
    state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    old = state.get("config", {})
    for key, value in cfg.items():
        if key in RESUME_MAY_CHANGE or key not in old:
            continue
        if old[key] != value:
            raise _bad(f"--resume {str(checkpoint)!r}: the checkpoint was made with {key} = "
                       f"{old[key]!r}, this run has {value!r}: expected the same {key} to resume")
    step = int(state["step"])
    if step > cfg.get("steps", step):
        raise _bad(f"--resume {str(checkpoint)!r} is at step {step}, past steps = {cfg['steps']}: "
                   "expected more steps than the checkpoint has")
    return step


def check_fresh_start(train_dir: Path) -> None:
    """A new run must not bury an older one's checkpoints."""
    found = list_checkpoints(train_dir)
    if found:
        raise _bad(f"{str(train_dir)!r} already holds checkpoints (newest {found[-1].name}): "
                   "expected --resume latest to go on, or another --output (or remove the folder)")


# =========================================================================== the task

@dataclass
class Context:
    """What `build_task` gets: where and how to put its models."""
    device: Any                 # torch.device
    weight_dtype: Any           # torch dtype for frozen weights (fp16/bf16 under mixed precision)
    process_index: int
    num_processes: int
    is_main_process: bool
    train_dir: Path
    cfg: dict


class Task:
    """One kind of LoRA training, as the loop sees it. Subclass and fill in.

    Trainable parameters (the LoRA layers) stay float32; frozen weights may be in
    `Context.weight_dtype`. The loop prepares `trainable_models()` with accelerate (data
    parallel on several GPUs) and passes the prepared ones to `loss`.
    """

    def trainable_models(self) -> dict:
        """{name: torch module} holding the trainable LoRA layers."""
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """[{"params": [...], "lr": float}, ...] for AdamW (one lr per part)."""
        raise NotImplementedError

    def dataset_size(self) -> int:
        raise NotImplementedError

    def batch_groups(self) -> list | None:
        """A key per sample (such as its picture size) when samples of different keys
        must not share a batch; None (the default) when any samples batch together."""
        return None

    def load_batch(self, indices: list[int], generator) -> Any:
        """The batch of these samples, on the CPU (runs in a worker thread, one batch
        ahead). `generator` (a seeded torch.Generator) is for random crops and the like."""
        raise NotImplementedError

    def loss(self, batch, models: dict, generator) -> Any:
        """The scalar loss of one batch. `models` are the prepared trainable models (use
        them, not the originals, for the forward pass). Draw all randomness (noise,
        timesteps, dropout of captions) from `generator`, a CPU torch.Generator the loop
        owns and checkpoints."""
        raise NotImplementedError

    def trainable_state_dict(self) -> dict:
        """The trainable weights (what a checkpoint holds), as CPU float32 tensors."""
        out = {}
        for name, model in self.trainable_models().items():
            for pname, p in model.named_parameters():
                if p.requires_grad:
                    out[f"{name}.{pname}"] = p.detach().to("cpu", copy=True).contiguous()
        return out

    def load_trainable_state_dict(self, sd: dict) -> None:
        import torch

        params = {f"{name}.{pname}": p for name, model in self.trainable_models().items()
                  for pname, p in model.named_parameters() if p.requires_grad}
        if set(params) != set(sd):
            missing = sorted(set(params) - set(sd))[:3]
            extra = sorted(set(sd) - set(params))[:3]
            raise _bad(f"the checkpoint's LoRA does not fit this model (missing {missing}, "
                       f"unexpected {extra}): expected the same model and rank as when it was made")
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(sd[k].to(p.device, p.dtype))

    def save_lora(self, path: Path, step: int) -> None:
        """Write the user-facing LoRA file."""
        raise NotImplementedError

    def validate(self, step: int, folder: Path) -> Path | None:
        """Render something to look at (main process only); the path, or None."""
        return None


@dataclass
class TrainResult:
    step: int                              # the last step done
    start_step: int                        # where this run began (0, or the resumed step)
    losses: list[float] = field(default_factory=list)      # this run's per-step losses
    step_seconds: list[float] = field(default_factory=list)
    interrupted: bool = False
    checkpoint: Path | None = None         # the last checkpoint written
    validations: list[Path] = field(default_factory=list)
    is_main_process: bool = True           # False in the other processes of a multi-GPU run


# =========================================================================== the loop

def lr_factor(step: int, steps: int, warmup: int, schedule: str) -> float:
    """The learning-rate multiplier after `step` optimizer steps."""
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    rest = max(1, steps - warmup)
    done = min(1.0, (step - warmup) / rest)
    if schedule == "linear":
        return max(0.0, 1.0 - done)
    return 0.5 * (1.0 + math.cos(math.pi * done))


def resolve_precision(requested: str, cuda: bool) -> str:
    """The mixed precision accelerate is given: "auto" picks bf16 where the GPU has it,
    fp16 on other GPUs, none on the CPU; a precision the CPU cannot run is bad input."""
    if requested == "auto":
        if not cuda:
            return "no"
        import torch
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested != "no" and not cuda:
        raise _bad(f"mixed_precision = {requested!r} needs a CUDA GPU and there is none here: "
                   "expected 'no' or 'auto' on the CPU")
    return requested


def make_accelerator(mixed_precision: str):
    """accelerate's Accelerator (one process without `accelerate launch`)."""
    try:
        from accelerate import Accelerator
    except ImportError:
        raise _bad("lofid train needs the accelerate package: pip install accelerate") from None
    import torch

    precision = resolve_precision(mixed_precision, torch.cuda.is_available())
    return Accelerator(mixed_precision=precision)


def _weight_dtype(precision: str):
    import torch
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)


def sample_indices(seed: int, dataset_size: int, start: int, count: int) -> list[int]:
    """Dataset indices at sample positions start..start+count-1 of the run: epoch after
    epoch, each a permutation drawn from (seed, epoch). A pure function of the position,
    so a resumed run sees the same order."""
    import numpy as np

    out, perms = [], {}
    for pos in range(start, start + count):
        epoch, i = divmod(pos, dataset_size)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(dataset_size)
        out.append(int(perms[epoch][i]))
    return out


class GroupedOrder:
    """Batches that each hold samples of one group (one picture size): per epoch, each
    group is shuffled and cut into batches of `batch_size` (the last one of a group may
    be smaller), and the batches are shuffled. Batch k of the run is a pure function of
    (seed, k), as `sample_indices` is of the position."""

    def __init__(self, seed: int, keys: list, batch_size: int):
        self.seed, self.batch_size = seed, batch_size
        groups: dict = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        self.groups = [groups[k] for k in sorted(groups, key=repr)]
        self.per_epoch = sum(math.ceil(len(g) / batch_size) for g in self.groups)
        self._epochs: dict = {}

    def batch(self, k: int) -> list[int]:
        epoch, j = divmod(k, self.per_epoch)
        if epoch not in self._epochs:
            import numpy as np

            batches = []
            for g, members in enumerate(self.groups):
                order = np.random.default_rng([self.seed, epoch, g]).permutation(members)
                batches += [[int(i) for i in order[b:b + self.batch_size]]
                            for b in range(0, len(order), self.batch_size)]
            shuffle = np.random.default_rng([self.seed, epoch]).permutation(len(batches))
            self._epochs = {epoch: [batches[i] for i in shuffle]}     # one epoch at a time
        return self._epochs[epoch][j]


def _batch_generator(seed: int, position: int):
    """A generator for one batch's loading (crops, flips): seeded by its position, so
    loading can run ahead in a thread without changing any result."""
    import torch
    return torch.Generator().manual_seed((seed * 1_000_003 + position) % (2**63))


def seed_everything(seed: int, process_index: int = 0) -> None:
    import numpy as np
    import torch

    s = seed + 1000 * process_index
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def _rng_state(generator) -> dict:
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Interrupt:
    """Ctrl-C asks for a checkpoint and a stop at the end of the step; a second one stops
    at once. The handler only sets a flag; the old handler comes back afterwards."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nlofid: stopping after this step and saving a checkpoint (Ctrl-C again to "
              "stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


class Progress:
    """One line on stderr: step, smoothed loss, it/s and time left. Redrawn in place on a
    terminal; otherwise a line every few percent."""

    def __init__(self, total: int, start: int, stream=None):
        self.total, self.start = total, start
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = max(1, total // 50)
        self.smooth = None
        self.t0 = time.monotonic()
        self.last_line = 0.0
        self.open = False           # a redrawn line waits for its newline

    def update(self, step: int, loss: float) -> None:
        self.smooth = loss if self.smooth is None else 0.95 * self.smooth + 0.05 * loss
        done = step - self.start
        elapsed = time.monotonic() - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - step) / rate if rate > 0 else float("inf")
        width = 24
        filled = int(width * step / max(1, self.total))
        line = (f"step {step}/{self.total} [{'#' * filled}{'.' * (width - filled)}] "
                f"loss {self.smooth:.4f} {rate:.2f} it/s ETA {_hms(left)}")
        if self.tty:
            self.stream.write("\r" + line)
            self.open = True
        elif step % self.every == 0 or step >= self.total or time.monotonic() - self.last_line > 30:
            self.stream.write(line + "\n")
            self.last_line = time.monotonic()
        self.stream.flush()

    def close(self) -> None:
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def _write_losses(path: Path, keep_until: int | None) -> None:
    """Start the loss log: empty for a new run, cut after the resumed step otherwise."""
    if keep_until is None or not path.exists():
        path.write_text("", encoding="utf-8")
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= keep_until:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")


def read_losses(train_dir) -> list[dict]:
    """The per-step log of a run: [{"step", "loss", "lr"}, ...]."""
    path = Path(train_dir) / LOSSES_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def train(cfg: dict, build_task: Callable[[Context], Task], *, output: Path, train_dir: Path,
          resume: Path | None = None, progress: bool = True) -> TrainResult:
    """Train the task's LoRA for cfg["steps"] optimizer steps and write it to `output`.

    `build_task(context)` loads the models (after the seeds are set, so the LoRA's start
    is the seed's). `resume` is a checkpoint folder (from `find_checkpoint`). Returns a
    TrainResult; `interrupted` is True when Ctrl-C stopped it (a checkpoint was saved).
    """
    import torch

    accelerator = make_accelerator(cfg["mixed_precision"])
    main = accelerator.is_main_process
    train_dir = Path(train_dir)
    if main:
        train_dir.mkdir(parents=True, exist_ok=True)
        _write_effective_config(train_dir / "config.toml", cfg)
    seed = cfg["seed"]
    seed_everything(seed, accelerator.process_index)
    ctx = Context(device=accelerator.device, weight_dtype=_weight_dtype(accelerator.mixed_precision),
                  process_index=accelerator.process_index, num_processes=accelerator.num_processes,
                  is_main_process=main, train_dir=train_dir, cfg=cfg)
    task = build_task(ctx)

    groups = task.param_groups()
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"])
    steps, warmup, schedule = cfg["steps"], cfg["warmup_steps"], cfg["lr_schedule"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, warmup, schedule))
    names = list(task.trainable_models())
    prepared = accelerator.prepare(*task.trainable_models().values(), optimizer, scheduler)
    models = dict(zip(names, prepared[:len(names)]))
    optimizer, scheduler = prepared[len(names)], prepared[len(names) + 1]
    # One generator per process for the noise and timesteps: CPU, so that the same seed
    # gives the same numbers on any device.
    generator = torch.Generator().manual_seed(seed + 7919 * accelerator.process_index)

    start = 0
    if resume is not None:
        start = _load_checkpoint(Path(resume), task, optimizer, scheduler, generator, accelerator)
        # The checkpoint holds the rates of its own run's curve; with another `steps` the
        # curve differs: start from this run's rate at `start` (the same number when
        # `steps` is the same, so a plain resume stays exact).
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lr_factor(start, steps, warmup, schedule)
    if main:
        _write_losses(train_dir / LOSSES_FILE, start if resume is not None else None)

    result = TrainResult(step=start, start_step=start, is_main_process=main)
    bar = Progress(steps, start) if (progress and main) else None
    per_step = cfg["batch_size"] * cfg["grad_accum"] * accelerator.num_processes
    params = [p for g in optimizer.param_groups for p in g["params"]]
    n = task.dataset_size()

    def micro_position(step: int, micro: int) -> int:
        return (step * cfg["grad_accum"] + micro) * cfg["batch_size"] * accelerator.num_processes \
            + accelerator.process_index * cfg["batch_size"]

    keys = task.batch_groups()
    grouped = GroupedOrder(seed, keys, cfg["batch_size"]) if keys is not None else None

    def fetch(step: int, micro: int):
        pos = micro_position(step, micro)
        if grouped is not None:   # batch number pos // batch_size of the run
            idx = grouped.batch(pos // cfg["batch_size"])
        else:
            idx = sample_indices(seed, n, pos, cfg["batch_size"])
        return task.load_batch(idx, _batch_generator(seed, pos))

    def schedule_of(step: int) -> list[tuple[int, int]]:
        return [(step, m) for m in range(cfg["grad_accum"])]

    pool = ThreadPoolExecutor(1, thread_name_prefix="lofid-batches")
    with _Interrupt() as interrupt, open(train_dir / LOSSES_FILE, "a", encoding="utf-8") \
            if main else contextlib.nullcontext() as log:
        try:
            upcoming = [pool.submit(fetch, s, m) for s, m in schedule_of(start)] if start < steps else []
            for model in models.values():
                model.train()
            step = start
            while step < steps:
                t0 = time.perf_counter()
                batches = [f.result() for f in upcoming]
                upcoming = ([pool.submit(fetch, s, m) for s, m in schedule_of(step + 1)]
                            if step + 1 < steps else [])
                total = torch.zeros((), device=accelerator.device)
                for micro, batch in enumerate(batches):
                    last = micro == len(batches) - 1
                    sync = contextlib.ExitStack()
                    if not last:   # gradients are exchanged between GPUs once per step
                        for model in models.values():
                            sync.enter_context(accelerator.no_sync(model))
                    with sync, accelerator.autocast():
                        loss = task.loss(batch, models, generator)
                        accelerator.backward(loss / len(batches))
                    total += loss.detach().float()
                if cfg["max_grad_norm"] > 0:
                    accelerator.clip_grad_norm_(params, cfg["max_grad_norm"])
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                mean = accelerator.reduce(total / len(batches), "mean").item()
                result.step = step
                result.losses.append(mean)
                result.step_seconds.append(time.perf_counter() - t0)
                if main:
                    log.write(json.dumps({"step": step, "loss": mean, "lr": lr}) + "\n")
                    log.flush()
                if bar:
                    bar.update(step, mean)
                if not math.isfinite(mean):
                    raise RuntimeError(f"the loss became {mean} at step {step}: lower the learning "
                                       "rate or use another mixed_precision")
                stop = _all_agree(accelerator, interrupt.requested)
                if stop or step == steps or (cfg["checkpoint_every"] and step % cfg["checkpoint_every"] == 0):
                    result.checkpoint = save_checkpoint(train_dir, step, cfg, task, optimizer, scheduler,
                                                        generator, accelerator, per_step)
                if main and (step == steps or (cfg["validation_every"]
                                               and step % cfg["validation_every"] == 0)):
                    shot = _validate(task, step, train_dir)
                    if shot is not None:
                        result.validations.append(shot)
                if stop:
                    result.interrupted = True
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if bar:
                bar.close()
    if not result.interrupted and result.step >= steps and main:
        output.parent.mkdir(parents=True, exist_ok=True)
        task.save_lora(output, result.step)
    accelerator.wait_for_everyone()
    return result


def _all_agree(accelerator, flag: bool) -> bool:
    """Every process stops at the same step when any one was interrupted."""
    if accelerator.num_processes == 1:
        return flag
    import torch
    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(t, "sum").item() > 0)


def _validate(task: Task, step: int, train_dir: Path) -> Path | None:
    """Validation renders with its own generators; the training random state is put back
    afterwards, so looking does not change what is learned."""
    import numpy as np
    import torch

    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
             torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    folder = train_dir / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            return task.validate(step, folder)
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        if saved[3] is not None:
            torch.cuda.set_rng_state_all(saved[3])


def _write_effective_config(path: Path, cfg: dict) -> None:
    lines = ["# The settings this run used (defaults, config file and flags together)."]
    for key, value in cfg.items():
        lines.append(f"{key} = {toml_value(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


# =========================================================================== checkpoints

def save_checkpoint(train_dir: Path, step: int, cfg: dict, task: Task, optimizer, scheduler,
                    generator, accelerator, samples_per_step: int) -> Path:
    """Write TRAIN_DIR/checkpoints/step-NNNNNN/ atomically (a folder renamed into place);
    keep the newest `keep_checkpoints`."""
    import torch
    from safetensors.torch import save_file

    final = Path(train_dir) / CHECKPOINTS / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".partial")
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(generator), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if main:
        save_file(task.trainable_state_dict(), str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if getattr(accelerator, "scaler", None) is not None:     # fp16: the loss scale
            torch.save(accelerator.scaler.state_dict(), tmp / "scaler.pt")
        task.save_lora(tmp / "lora.safetensors", step)
        state = {"step": step, "samples_seen": step * samples_per_step,
                 "num_processes": accelerator.num_processes, "config": cfg,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(train_dir)[:-cfg["keep_checkpoints"]]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _load_checkpoint(folder: Path, task: Task, optimizer, scheduler, generator, accelerator) -> int:
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if state.get("num_processes", 1) != accelerator.num_processes:
        raise _bad(f"--resume {str(folder)!r} was saved by {state.get('num_processes')} processes, "
                   f"this run has {accelerator.num_processes}: expected the same number of GPUs "
                   "to continue with the same data order")
    task.load_trainable_state_dict(load_file(str(folder / "trainable.safetensors")))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", map_location="cpu", weights_only=True))
    if getattr(accelerator, "scaler", None) is not None and (folder / "scaler.pt").is_file():
        accelerator.scaler.load_state_dict(torch.load(folder / "scaler.pt", weights_only=True))
    rng = folder / f"rng-{accelerator.process_index}.pt"
    _set_rng_state(torch.load(rng, map_location="cpu", weights_only=True), generator)
    return int(state["step"])


# =========================================================================== models and LoRA files

@dataclass
class SD15:
    """The parts of an SD1.5 model a trainer needs."""
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any          # DDPMScheduler from the model's scheduler config
    name: str


def load_sd15(model_path, dtype=None) -> SD15:
    """UNet, VAE, text encoder, tokenizer and a training noise scheduler from a diffusers
    folder or a single-file checkpoint (whose configs come from a matching diffusers
    folder among the models, as for generating)."""
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    from lofid import models

    ref = check_model(model_path)
    path = Path(ref.path)
    kwargs = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                  local_files_only=True, dtype=dtype or torch.float32)
    try:
        if ref.format == "diffusers":
            pipe = StableDiffusionPipeline.from_pretrained(str(path), variant=models.variant_of(path),
                                                           **kwargs)
        else:
            cfg_dir = models.config_folder_for(ref)
            pipe = StableDiffusionPipeline.from_single_file(str(path), config=str(cfg_dir), **kwargs)
    except models.ModelError as e:
        raise _bad(f"--model: {e}") from None
    noise = DDPMScheduler.from_config(pipe.scheduler.config)
    return SD15(unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder,
                tokenizer=pipe.tokenizer, noise_scheduler=noise, name=ref.name)


def kohya_state_dict(model, prefix: str, alpha: float) -> dict:
    """The peft LoRA layers of `model` with kohya names: prefix + module path with "_"
    for ".", then .lora_down.weight / .lora_up.weight / .alpha (text encoders: prefix
    "lora_te_", module path from text_model.)."""
    import torch
    from peft import get_peft_model_state_dict

    sd = get_peft_model_state_dict(model)
    out = {}
    for key, value in sd.items():
        module, _, rest = key.rpartition(".lora_")
        if prefix.startswith("lora_te") and not module.startswith("text_model."):
            # kohya names CLIP layers from text_model.*; newer transformers drop that level.
            module = "text_model." + module
        stem = prefix + module.replace(".", "_")
        if rest.startswith("A"):
            out[stem + ".lora_down.weight"] = value.detach().float().cpu().contiguous()
            out[stem + ".alpha"] = torch.tensor(float(alpha))
        elif rest.startswith("B"):
            out[stem + ".lora_up.weight"] = value.detach().float().cpu().contiguous()
    return out


def save_kohya_lora(path: Path, parts: dict, rank: int, alpha: float, metadata: dict | None = None,
                    dtype=None) -> Path:
    """Write {prefix: model} (prefixes "lora_unet_", "lora_te_") as one kohya-format
    .safetensors, atomically, with kohya's metadata (ss_network_dim, ss_network_alpha, ...)
    plus `metadata` (values become strings)."""
    from safetensors.torch import save_file

    sd = {}
    for prefix, model in parts.items():
        sd.update(kohya_state_dict(model, prefix, alpha))
    if dtype is not None:
        sd = {k: (v.to(dtype) if k.endswith(".weight") else v) for k, v in sd.items()}
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
            "ss_network_alpha": str(alpha)}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    save_file(sd, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path
