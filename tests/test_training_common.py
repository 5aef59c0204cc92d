"""The training core both LoRA trainers share: config, data order, learning-rate curve,
the loop with its checkpoints and resume, and the kohya LoRA files lofid loads back."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from lofid.errors import UserError as BadInput
from lofid.training import common
from lofid.training.common import Option

SCHEMA = [
    Option("model", str, None, "the base model"),
    Option("rank", int, 32, "LoRA rank", minimum=1, maximum=512),
    Option("learning_rate", float, 1e-4, "learning rate", minimum=0.0, maximum=1.0),
    Option("train_text_encoder", bool, False, "also the text encoder"),
    Option("lr_schedule", str, "cosine", "curve", choices=("constant", "linear", "cosine")),
    Option("prompts", list, ["a", "b"], "prompts", flag=False),
]


def _toml(tmp_path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- config

def test_flags_override_the_file_which_overrides_the_defaults(tmp_path):
    path = _toml(tmp_path, 'model = "m"\nrank = 64\nlearning_rate = 3e-4\nprompts = ["x"]\n')
    cfg = common.load_config(SCHEMA, path, {"rank": 16, "learning_rate": None})
    assert cfg == {"model": "m", "rank": 16, "learning_rate": 3e-4, "train_text_encoder": False,
                   "lr_schedule": "cosine", "prompts": ["x"]}
    # A whole number is a fine float; the value comes back as a float.
    cfg = common.load_config(SCHEMA, _toml(tmp_path, 'model = "m"\nlearning_rate = 1\n'))
    assert cfg["learning_rate"] == 1.0 and isinstance(cfg["learning_rate"], float)


@pytest.mark.parametrize("text, words", [
    ('model = "m"\nrnak = 4\n', ["'rnak'", "did you mean 'rank'", "c.toml"]),
    ('model = "m"\nrank = 0\n', ["rank = 0", "from 1 to 512"]),
    ('model = "m"\nrank = 4.5\n', ["rank = 4.5", "whole number"]),
    ('model = "m"\nrank = true\n', ["rank = True", "whole number"]),
    ('model = "m"\ntrain_text_encoder = "yes"\n', ["train_text_encoder = 'yes'", "true or false"]),
    ('model = "m"\nlr_schedule = "cosin"\n', ["'cosin'", "'cosine'"]),
    ('model = "m"\nprompts = "one"\n', ["prompts = 'one'", "list of strings"]),
    ('model = "m"\nlearning_rate = nan\n', ["learning_rate = nan"]),
    ('model = "m"\n[style]\nrank = 4\n', ["'style'", "top level"]),
    ('rank = = 4\n', ["not valid TOML"]),
    ('rank = 4\n', ["model is not set", "--model"]),
])
def test_bad_config_names_key_value_and_expectation(tmp_path, text, words):
    with pytest.raises(BadInput) as e:
        common.load_config(SCHEMA, _toml(tmp_path, text))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_bad_flag_value_names_the_flag(tmp_path):
    with pytest.raises(BadInput, match=r"--rank: rank = 9999 .* from 1 to 512"):
        common.load_config(SCHEMA, None, {"model": "m", "rank": 9999})
    with pytest.raises(BadInput, match="no such file"):
        common.load_config(SCHEMA, tmp_path / "missing.toml")


def test_flags_come_from_the_schema():
    import argparse

    parser = argparse.ArgumentParser()
    common.add_flags(parser, SCHEMA)
    args = parser.parse_args(["--rank", "8", "--train-text-encoder", "--lr-schedule", "linear"])
    assert common.overrides_from_args(args, SCHEMA) == {
        "rank": 8, "train_text_encoder": True, "lr_schedule": "linear"}
    assert common.overrides_from_args(parser.parse_args(["--no-train-text-encoder"]), SCHEMA) == {
        "train_text_encoder": False}
    with pytest.raises(SystemExit):
        parser.parse_args(["--prompts", "x"])       # flag=False: file only


def test_data_and_output_checks(tmp_path):
    with pytest.raises(BadInput, match="no such folder"):
        common.check_data_dir(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BadInput, match="holds no .png"):
        common.check_data_dir(tmp_path)
    with pytest.raises(BadInput, match="has no manifest.json"):
        common.check_data_dir(tmp_path, need="manifest.json")
    with pytest.raises(BadInput, match=r"does not end in \.safetensors"):
        common.check_output(tmp_path / "lora.ckpt")
    assert common.check_output(tmp_path / "new" / "l.safetensors").name == "l.safetensors"
    assert common.train_dir_for(Path("/x/cozy.safetensors")) == Path("/x/cozy.training")


def test_model_checks_read_headers_only(tmp_path):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(BadInput, match="weights.safetensors"):
        common.check_model(bad)
    with pytest.raises(BadInput, match="no such file"):
        common.check_model(tmp_path / "missing")
    with pytest.raises(BadInput, match="--model is not set"):
        common.check_model("")


def test_mixed_precision_on_the_cpu():
    assert common.resolve_precision("auto", cuda=False) == "no"
    assert common.resolve_precision("no", cuda=False) == "no"
    with pytest.raises(BadInput, match=r"mixed_precision = 'fp16' needs a CUDA GPU"):
        common.resolve_precision("fp16", cuda=False)


# --------------------------------------------------------------------------- schedule, data order

def test_learning_rate_curves():
    steps, warm = 100, 10
    for schedule in ("constant", "linear", "cosine"):
        f = [common.lr_factor(s, steps, warm, schedule) for s in range(steps)]
        assert all(a < b for a, b in zip(f[:warm], f[1:warm + 1]))     # rises during the warm-up
        assert f[warm] == pytest.approx(1.0)
    cos = [common.lr_factor(s, steps, warm, "cosine") for s in range(warm, steps + 1)]
    assert all(a >= b for a, b in zip(cos, cos[1:])) and cos[-1] == pytest.approx(0.0)
    assert common.lr_factor(55, steps, warm, "linear") == pytest.approx(0.5)
    assert common.lr_factor(99, steps, warm, "constant") == 1.0


def test_data_order_is_a_permutation_per_epoch_and_depends_only_on_position():
    n = 7
    order = common.sample_indices(3, n, 0, 5 * n)
    for e in range(5):
        assert sorted(order[e * n:(e + 1) * n]) == list(range(n))
    assert len({tuple(order[e * n:(e + 1) * n]) for e in range(5)}) > 1   # reshuffled
    assert common.sample_indices(3, n, 12, 9) == order[12:21]             # resume mid-epoch
    assert common.sample_indices(4, n, 0, n) != order[:n]                  # the seed matters


def test_grouped_batches_hold_one_group_and_cover_each_epoch():
    keys = ["64x64"] * 5 + ["96x64"] * 3 + ["64x96"]
    order = common.GroupedOrder(7, keys, batch_size=2)
    assert order.per_epoch == 3 + 2 + 1
    for epoch in range(3):
        batches = [order.batch(epoch * order.per_epoch + j) for j in range(order.per_epoch)]
        assert sorted(i for b in batches for i in b) == list(range(len(keys)))
        assert all(len({keys[i] for i in b}) == 1 and 1 <= len(b) <= 2 for b in batches)
    again = common.GroupedOrder(7, keys, batch_size=2)
    assert [again.batch(k) for k in (13, 4, 0)] == [order.batch(k) for k in (13, 4, 0)]
    assert [order.batch(k) for k in range(6)] != [order.batch(k) for k in range(6, 12)]


# --------------------------------------------------------------------------- the loop

from helpers import Lazy  # noqa: E402

torch = Lazy("torch")


class LineTask(common.Task):
    """Fit y = 3x - 1 with a linear layer: small enough to check the loop's arithmetic."""

    def __init__(self, ctx, cfg, n=12, interrupt_on_call=None):
        self.ctx, self.cfg, self.interrupt_on_call, self.calls = ctx, cfg, interrupt_on_call, 0
        self.model = torch.nn.Linear(1, 1)
        g = torch.Generator().manual_seed(123)
        self.x = torch.rand(n, 1, generator=g) * 2 - 1
        self.y = 3 * self.x - 1
        self.saved = []

    def trainable_models(self):
        return {"line": self.model}

    def param_groups(self):
        return [{"params": list(self.model.parameters()), "lr": self.cfg["learning_rate"]}]

    def dataset_size(self):
        return len(self.x)

    def load_batch(self, indices, generator):
        return self.x[indices], self.y[indices]

    def loss(self, batch, models, generator):
        self.calls += 1
        if self.calls == self.interrupt_on_call:
            os.kill(os.getpid(), signal.SIGINT)
        x, y = batch
        return torch.nn.functional.mse_loss(models["line"](x), y)

    def save_lora(self, path, step):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(path))
        self.saved.append(step)


LOOP = [Option("learning_rate", float, 0.2, "lr")] + common.loop_options(
    steps=20, batch_size=4, warmup_steps=0, lr_schedule="constant", checkpoint_every=5,
    keep_checkpoints=2, validation_every=0, max_grad_norm=0.0, weight_decay=0.0)


def _run(tmp_path, name, resume=None, interrupt_on_call=None, **over):
    cfg = common.load_config(LOOP, None, over)
    tasks = []

    def build(ctx):
        tasks.append(LineTask(ctx, cfg, interrupt_on_call=interrupt_on_call))
        return tasks[0]

    out = tmp_path / f"{name}.safetensors"
    result = common.train(cfg, build, output=out, train_dir=common.train_dir_for(out),
                          resume=resume, progress=False)
    return result, tasks[0], out


def test_loop_learns_logs_and_keeps_the_newest_checkpoints(tmp_path):
    result, task, out = _run(tmp_path, "a", steps=40)
    assert result.step == 40 and not result.interrupted and len(result.losses) == 40
    assert result.losses[-1] < 0.05 * result.losses[0]
    assert task.model.weight.item() == pytest.approx(3, abs=0.5)
    log = common.read_losses(common.train_dir_for(out))
    assert [r["step"] for r in log] == list(range(1, 41))
    assert [r["loss"] for r in log] == result.losses
    assert all(r["lr"] == pytest.approx(0.2) for r in log)
    kept = [p.name for p in common.list_checkpoints(common.train_dir_for(out))]
    assert kept == ["step-000035", "step-000040"]
    state = json.loads((common.train_dir_for(out) / "checkpoints/step-000040/state.json").read_text())
    assert state["step"] == 40 and state["samples_seen"] == 160 and state["config"]["seed"] == 0
    assert out.is_file() and task.saved[-1] == 40
    assert "learning_rate = 0.2" in (common.train_dir_for(out) / "config.toml").read_text()


def test_gradient_accumulation_equals_a_bigger_batch(tmp_path):
    big, _, _ = _run(tmp_path, "big", batch_size=4, grad_accum=1)
    acc, _, _ = _run(tmp_path, "acc", batch_size=2, grad_accum=2)
    assert acc.losses == pytest.approx(big.losses, rel=1e-5)


def test_ctrl_c_checkpoints_and_resume_continues_exactly(tmp_path):
    """A real SIGINT in the middle of step 8 (sent by the process to itself): the step
    finishes, a checkpoint is written, and resuming gives the uninterrupted run's losses
    and weights, bit for bit."""
    over = dict(lr_schedule="cosine", warmup_steps=3, grad_accum=2, batch_size=2)
    whole, whole_task, _ = _run(tmp_path, "whole", **over)
    part, _, out = _run(tmp_path, "part", interrupt_on_call=15, **over)
    assert part.interrupted and part.step == 8 and part.checkpoint.name == "step-000008"
    assert not out.exists()                       # no LoRA file from an unfinished run
    train_dir = common.train_dir_for(out)
    resumed, task, _ = _run(tmp_path, "part", resume=common.find_checkpoint("latest", train_dir), **over)
    assert resumed.start_step == 8 and resumed.step == 20
    # Exact: the checkpoint restores weights, optimiser and random state bit for bit, and
    # the rest of the run is the same arithmetic on the same machine.
    assert [r["loss"] for r in common.read_losses(train_dir)] == whole.losses
    assert torch.equal(task.model.weight, whole_task.model.weight)
    assert torch.equal(task.model.bias, whole_task.model.bias)


DATA_PARALLEL_CHILD = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_training_common import _run
from lofid.training import common
folder, mode = Path(sys.argv[1]), sys.argv[2]
out = folder / "l.safetensors"
ckpt = common.find_checkpoint("latest", common.train_dir_for(out)) if mode == "resume" else None
# Only the first process is interrupted: both must stop at the end of the same step.
call = 9 if mode == "interrupt" and os.environ["RANK"] == "0" else None
result, task, _ = _run(folder, "l", resume=ckpt, interrupt_on_call=call, steps=10, batch_size=2,
                       grad_accum=2, lr_schedule="cosine", warmup_steps=2, checkpoint_every=0)
print(json.dumps({{"processes": task.ctx.num_processes, "step": result.step,
                  "interrupted": result.interrupted, "weight": task.model.weight.item()}}))
"""


def _two_processes(script: Path, folder: Path, mode: str) -> list[dict]:
    """Run `script` as a 2-process data-parallel job on the CPU (accelerate over gloo),
    with the environment torchrun would set."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    children = []
    for rank in range(2):
        env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
               "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"}
        children.append(subprocess.Popen([sys.executable, str(script), str(folder), mode], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_two_processes_stop_together_and_resume(tmp_path):
    """Two processes (as `accelerate launch` starts them, here on the CPU): each takes its
    own samples; Ctrl-C reaching one stops both at the end of the same step; each saves
    its own random state; the resumed run ends with both holding the same weights.
    (That a resumed run equals an uninterrupted one is checked in one process above.)"""
    script = tmp_path / "child.py"
    script.write_text(DATA_PARALLEL_CHILD.format(tests=str(Path(__file__).parent)), encoding="utf-8")
    stopped = _two_processes(script, tmp_path, "interrupt")
    assert [(r["processes"], r["step"], r["interrupted"]) for r in stopped] == [(2, 5, True)] * 2
    train_dir = common.train_dir_for(tmp_path / "l.safetensors")
    last = common.list_checkpoints(train_dir)[-1]
    assert last.name == "step-000005"
    assert sorted(p.name for p in last.glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"]
    state = json.loads((last / "state.json").read_text())
    assert state["num_processes"] == 2 and state["samples_seen"] == 5 * 2 * 2 * 2
    again = _two_processes(script, tmp_path, "resume")
    # Exact: the all-reduce hands both processes the same averaged gradient
    assert [r["step"] for r in again] == [10, 10] and again[0]["weight"] == again[1]["weight"]
    assert [r["step"] for r in common.read_losses(train_dir)] == list(range(1, 11))
    assert (tmp_path / "l.safetensors").is_file()


def test_resume_with_more_steps_follows_the_new_curve(tmp_path):
    """A run of 5 cosine steps ends at learning rate 0; resumed with steps = 10 it goes on
    from where a 10-step curve is at step 5 (half), not from 0."""
    _, _, out = _run(tmp_path, "grow", steps=5, lr_schedule="cosine", warmup_steps=0)
    ckpt = common.find_checkpoint("latest", common.train_dir_for(out))
    _run(tmp_path, "grow", resume=ckpt, steps=10, lr_schedule="cosine", warmup_steps=0)
    lrs = [r["lr"] for r in common.read_losses(common.train_dir_for(out))]
    assert len(lrs) == 10
    assert lrs[4] == pytest.approx(0.2 * common.lr_factor(4, 5, 0, "cosine"))    # the short run's
    assert lrs[5] == pytest.approx(0.1)              # half way down the 10-step curve
    assert lrs[6:] == pytest.approx([0.2 * common.lr_factor(s, 10, 0, "cosine") for s in range(6, 10)])


def test_resume_refuses_a_changed_setting(tmp_path):
    _, _, out = _run(tmp_path, "r")
    ckpt = common.find_checkpoint("latest", common.train_dir_for(out))
    cfg = common.load_config(LOOP, None, {"learning_rate": 0.1, "steps": 40})
    with pytest.raises(BadInput, match=r"learning_rate = 0.2, this run has 0.1"):
        common.check_resume(cfg, ckpt)
    cfg = common.load_config(LOOP, None, {"steps": 40, "checkpoint_every": 7})
    assert common.check_resume(cfg, ckpt) == 20                 # how often to save may change
    with pytest.raises(BadInput, match="already holds checkpoints"):
        common.check_fresh_start(common.train_dir_for(out))
    with pytest.raises(BadInput, match="no checkpoint"):
        common.find_checkpoint("latest", tmp_path / "elsewhere.training")


# --------------------------------------------------------------------------- kohya LoRA files

def test_kohya_file_round_trips_through_lofid_loras(tmp_path):
    """A LoRA saved with kohya names gives, loaded by lofid's --lora code, the same UNet
    and text encoder outputs as the peft layers it was saved from (alpha/rank included)."""
    pytest.importorskip("diffusers")
    pytest.importorskip("peft")
    import sys

    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from safetensors import safe_open

    from lofid import loras
    from lofid.models import ModelRef
    from lofid.training import style

    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_models

    folder = tiny_models.tiny_pipeline_dir(tmp_path / "models")
    trained = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    rank, alpha = 4, 8.0          # scale 2: a wrong alpha reading would show
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=style.UNET_TARGETS),
                            trained.unet)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=style.TEXT_ENCODER_TARGETS),
                            trained.text_encoder)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for model in (trained.unet, trained.text_encoder):
            for name, p in model.named_parameters():
                if "lora_B" in name:      # as after training: B is no longer zero
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    path = common.save_kohya_lora(tmp_path / "cozy.safetensors",
                                  {"lora_unet_": trained.unet, "lora_te_": trained.text_encoder},
                                  rank, alpha, {"modelspec.trigger_phrase": "lofivision"})
    with safe_open(str(path), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert all(k.startswith(("lora_unet_", "lora_te_text_model_encoder_layers_")) for k in keys)
    assert any(k.endswith(".lora_down.weight") for k in keys) and any(k.endswith(".alpha") for k in keys)
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "8.0"
    assert meta["modelspec.trigger_phrase"] == "lofivision"

    fresh = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    ids = fresh.tokenizer(["a cozy study room"], padding="max_length", max_length=77,
                          return_tensors="pt").input_ids
    latents = torch.randn(1, 4, 8, 8, generator=g)
    t = torch.tensor([500])

    def outputs(pipe):
        with torch.no_grad():
            hidden = pipe.text_encoder(ids)[0]
            return hidden, pipe.unet(latents, t, hidden).sample

    base = outputs(fresh)
    loras.apply_loras(fresh, [(ModelRef("lora", path, "cozy", "kohya"), 1.0)], [])
    loaded, want = outputs(fresh), outputs(trained)
    for got, exp, b in zip(loaded, want, base):
        assert (exp - b).abs().max() > 1e-3                  # the LoRA does change things
        torch.testing.assert_close(got, exp, atol=1e-4, rtol=1e-4)
