"""Finding and loading weights: base checkpoints, motion adapters, style and motion LoRAs.

Weights are looked up, in this order, in configured folders, in $LOFID_MODELS (a
path list), in $XDG_DATA_HOME/lofid/models, and in the Hugging Face cache
($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). They may be diffusers
folders or single files; a single file's kind is decided from its header (key names and
shapes) without reading the weights. Nothing here touches the network except `pull()`.

torch, diffusers and huggingface_hub are imported only inside the functions that need
them, so `lofid --help` stays light.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lofid import paths
from lofid.errors import UserError

KINDS = ("checkpoint", "motion_adapter", "lora", "motion_lora")
# Model families: SD1.5 (AnimateDiffPipeline, motion modules v1-v3) and SDXL
# (AnimateDiffSDXLPipeline, SDXL motion modules). A motion adapter only fits a UNet of
# its own family: the channels of their down levels must agree.
FAMILIES = ("sd15", "sdxl")
FAMILY_NAMES = {"sd15": "SD1.5", "sdxl": "SDXL"}
# Motion adapters of each family as published (down-level channels), to name the family
# of an adapter that does not fit; other shapes are named by their channels only.
_PUBLISHED_MOTION_CHANNELS = {(320, 640, 1280, 1280): "sd15", (320, 640, 1280): "sdxl"}
_MOTION_EXAMPLE = {"sd15": "guoyww/animatediff-motion-adapter-v1-5-3",
                   "sdxl": "guoyww/animatediff-motion-adapter-sdxl-beta"}
FORMATS = ("diffusers", "single_file", "kohya", "peft", "original_mm")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# File stems that say nothing about the model: such files are named after their folder.
GENERIC_STEMS = {
    "pytorch_lora_weights", "adapter_model", "diffusion_pytorch_model", "model",
    "pytorch_model", "lora", "weights",
}
# What a folder walk picks up; .bin/.pth are read only when named by path (caches are
# full of unrelated .bin files that only a full unpickling could identify).
SCAN_SUFFIXES = (".safetensors", ".ckpt", ".pt")
_MAX_DEPTH = 6  # how deep a search folder is walked (guards against link cycles)


class ModelError(UserError, ValueError):
    """A model that is missing, unreadable, of the wrong kind or the wrong shape."""


@dataclass(frozen=True)
class ModelRef:
    kind: str       # one of KINDS
    path: Path      # a diffusers folder or a single file
    name: str       # what the user can call it: file stem, folder name or hub repo id
    format: str     # one of FORMATS

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.format}) at {self.path}"


# --- the models `lofid models pull` knows ------------------------------------------------

@dataclass(frozen=True)
class Pullable:
    name: str
    repo_id: str
    kind: str
    what: str
    allow_patterns: tuple[str, ...] | None = None
    ignore_patterns: tuple[str, ...] | None = None


PULLABLE = {
    p.name: p
    for p in (
        Pullable(
            "dreamshaper-8", "Lykon/dreamshaper-8", "checkpoint",
            "SD1.5 illustration checkpoint (diffusers folder, fp16 weights)",
            ("model_index.json", "*/*.json", "tokenizer/*", "*/*.fp16.safetensors"),
            ("safety_checker/*",),
        ),
        Pullable(
            "animatediff-v1-5-3", "guoyww/animatediff-motion-adapter-v1-5-3", "motion_adapter",
            "AnimateDiff v3 motion adapter for SD1.5 (16-frame window)",
            ("config.json", "*.safetensors"),
        ),
        Pullable(
            "animatediff-lightning", "ByteDance/AnimateDiff-Lightning", "motion_adapter",
            "AnimateDiff-Lightning 4-step motion adapter (few-step mode; Euler, trailing timesteps)",
            ("animatediff_lightning_4step_diffusers.safetensors",),
        ),
        Pullable(
            "animatelcm", "wangfuyun/AnimateLCM", "motion_adapter",
            "AnimateLCM motion adapter and its LCM LoRA (few-step mode; LCM scheduler)",
            ("config.json", "diffusion_pytorch_model.safetensors", "AnimateLCM_sd15_t2v_lora.safetensors"),
        ),
        # The SDXL family: pulled only by name (about 7 GB), never by default.
        Pullable(
            "sdxl-base", "stabilityai/stable-diffusion-xl-base-1.0", "checkpoint",
            "SDXL base checkpoint (diffusers folder, fp16 weights; the SDXL family's configs)",
            ("model_index.json", "*/*.json", "tokenizer/*", "tokenizer_2/*",
             "unet/*.fp16.safetensors", "vae/*.fp16.safetensors", "text_encoder/*.fp16.safetensors",
             "text_encoder_2/*.fp16.safetensors"),
        ),
        Pullable(
            "animatediff-sdxl-beta", "guoyww/animatediff-motion-adapter-sdxl-beta", "motion_adapter",
            "AnimateDiff SDXL motion adapter (beta; for SDXL checkpoints, 16-frame window)",
            ("config.json", "*.safetensors"),
        ),
    )
}
DEFAULT_SET = ("dreamshaper-8", "animatediff-v1-5-3", "animatediff-lightning")


# --- where to look -----------------------------------------------------------------------

def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    return paths.hf_cache()


def _data_models_dir() -> Path:
    return paths.models_dir()


def search_paths(config_dirs=None) -> list[Path]:
    """Configured folders, then $LOFID_MODELS, then the user's lofid models folder, then the HF cache.

    Folders that do not exist are left out, except configured ones (a typo in the config
    should be visible: `verify` and `find` report them).
    """
    out: list[Path] = []
    for d in config_dirs or ():
        out.append(Path(d).expanduser())
    for d in (os.environ.get("LOFID_MODELS") or "").split(os.pathsep):
        if d.strip() and Path(d).expanduser().is_dir():
            out.append(Path(d).expanduser())
    if _data_models_dir().is_dir():
        out.append(_data_models_dir())
    if hf_cache_dir().is_dir():
        out.append(hf_cache_dir())
    seen, unique = set(), []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _snapshot_of(repo_dir: Path) -> Path | None:
    """The snapshot folder of one cached repo: the one refs/main names, else the newest."""
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        cand = snaps / ref.read_text().strip()
        if cand.is_dir():
            return cand
    found = [p for p in snaps.iterdir() if p.is_dir()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _cache_repos(cache: Path) -> list[tuple[str, Path]]:
    """(repo id, snapshot folder) for each cached model repo."""
    out = []
    if not cache.is_dir():
        return out
    for d in sorted(cache.glob("models--*")):
        snap = _snapshot_of(d)
        if snap is not None:
            out.append((d.name[len("models--"):].replace("--", "/"), snap))
    return out


# --- reading what a file or folder is ------------------------------------------------------

def read_header(path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a weights file, without reading the weights themselves.

    .safetensors: its JSON header. .ckpt/.pt/.pth/.bin: torch.load(weights_only=True),
    memory-mapped, since pickles have no separate header.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file (expected a weights file: .safetensors or .ckpt)")
    if not path.is_file():
        raise ModelError(f"{path}: not a file (expected a weights file: .safetensors or .ckpt)")
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # SafetensorError: truncated, not safetensors at all ...
            raise ModelError(
                f"{path}: not a readable .safetensors file ({e}); expected a complete "
                "safetensors file (is it truncated or still downloading?)"
            ) from e
    if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
        import torch

        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:
            raise ModelError(
                f"{path}: could not be read with torch.load(weights_only=True) ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); expected a plain state dict "
                "(convert the file to .safetensors)"
            ) from e
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise ModelError(f"{path}: holds a {type(obj).__name__}, expected a state dict of tensors")
        return {k: tuple(v.shape) for k, v in obj.items() if hasattr(v, "shape")}
    raise ModelError(
        f"{path}: unsupported file type {path.suffix!r}; expected one of {', '.join(WEIGHT_SUFFIXES)}"
    )


_KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
_LORA_MARKS = (".lora_a.", ".lora_b.", ".lora.down.", ".lora.up.", ".lora_down.", ".lora_up.",
               "_lora.down.", "_lora.up.")


def classify_keys(keys) -> tuple[str, str] | None:
    """(kind, format) from tensor names, or None when the file is no model lofid uses."""
    keys = list(keys)
    low = [k.lower() for k in keys]
    if any(k.startswith(_KOHYA_PREFIXES) for k in low):
        motion = any("motion_modules" in k for k in low)
        return ("motion_lora" if motion else "lora", "kohya")
    if any(m in k for k in low for m in _LORA_MARKS):
        motion = any("motion_modules" in k for k in low)
        return ("motion_lora" if motion else "lora", "peft")
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return ("checkpoint", "single_file")
    if any(".motion_modules." in k or k.startswith("motion_modules.") for k in keys):
        if any(".temporal_transformer." in k for k in keys):
            return ("motion_adapter", "original_mm")
        return ("motion_adapter", "single_file")
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: not readable JSON ({e}); expected a diffusers config file") from e
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object (a diffusers config)")
    return data


def classify_folder(folder: Path) -> tuple[str, str] | None:
    """(kind, "diffusers") for a diffusers pipeline or MotionAdapter folder, else None."""
    folder = Path(folder)
    index = folder / "model_index.json"
    if index.is_file():
        data = _read_json(index)
        if "unet" in data and "vae" in data:
            return ("checkpoint", "diffusers")
        return None
    cfg = folder / "config.json"
    if cfg.is_file():
        data = _read_json(cfg)
        if data.get("_class_name") == "MotionAdapter":
            return ("motion_adapter", "diffusers")
    return None


def checkpoint_family(path) -> str:
    """"sd15" or "sdxl" for a checkpoint folder or single file, from configs or header.

    Folder: SDXL pipelines have a second text encoder (model_index.json text_encoder_2)
    and a UNet conditioned on pooled text and image sizes (addition_embed_type
    "text_time"). Single file: SDXL checkpoints hold their two text encoders under
    conditioner.embedders.0/1 (SD1.5 under cond_stage_model).
    """
    path = Path(path)
    if path.is_dir():
        index = _read_json(path / "model_index.json") if (path / "model_index.json").is_file() else {}
        second = index.get("text_encoder_2")
        if second not in (None, [None, None]):
            return "sdxl"
        unet_cfg = path / "unet" / "config.json"
        if unet_cfg.is_file() and _read_json(unet_cfg).get("addition_embed_type") == "text_time":
            return "sdxl"
        return "sd15"
    keys = read_header(path)
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    return "sd15"


def family_name(family: str) -> str:
    return FAMILY_NAMES.get(family, family)


def _name_for_file(path: Path) -> str:
    return path.parent.name if path.stem.lower() in GENERIC_STEMS else path.stem


def describe(path, name: str | None = None) -> ModelRef:
    """What the file or folder at `path` is; ModelError if it is none of the known kinds."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder (expected a model: a diffusers folder or a weights file)")
    if path.is_dir():
        found = classify_folder(path)
        if found is None:
            cfg = path / "config.json"
            what = ""
            if cfg.is_file():
                what = f" (its config.json is a {_read_json(cfg).get('_class_name', 'non-diffusers')} config)"
            raise ModelError(
                f"{path}: not a model folder lofid can use{what}; expected a diffusers pipeline "
                "folder (model_index.json) or a MotionAdapter folder (config.json with _class_name MotionAdapter)"
            )
        kind, fmt = found
        return ModelRef(kind, path, name or path.name, fmt)
    keys = read_header(path)
    found = classify_keys(keys)
    if found is None:
        sample = ", ".join(list(keys)[:3]) or "no tensors"
        raise ModelError(
            f"{path}: not a model lofid can use (keys like {sample}); expected a checkpoint "
            "(model.diffusion_model.*), a motion module (*motion_modules*) or a LoRA "
            "(lora_unet_* / *.lora_A.* / *.lora.down.*)"
        )
    kind, fmt = found
    return ModelRef(kind, path, name or _name_for_file(path), fmt)


# --- listing and finding -------------------------------------------------------------------

def _walk(root: Path, prefix: str | None = None):
    """Yield (path, name) for every model candidate under root.

    A model folder is yielded whole; its own generically named weights are parts of it,
    not models, but other weight files beside them are (a hub repo may hold a motion
    adapter and a LoRA together). prefix: the hub repo id when root is a cache snapshot.
    """
    root = Path(root)
    if not root.is_dir():
        return
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        here = prefix if (folder == root and prefix) else folder.name
        try:
            model_folder = classify_folder(folder) is not None
            entries = sorted(folder.iterdir())
        except (ModelError, OSError):
            continue
        if model_folder:
            yield folder, here
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                if not model_folder and depth < _MAX_DEPTH:
                    subdirs.append((e, depth + 1))
            elif e.suffix.lower() in SCAN_SUFFIXES:
                generic = e.stem.lower() in GENERIC_STEMS
                if generic and model_folder:
                    continue
                if generic:
                    yield e, here
                else:
                    yield e, f"{prefix}/{e.stem}" if prefix else e.stem
        stack.extend(reversed(subdirs))  # walk in sorted order


def _candidates(config_dirs=None):
    """(search path index, path, name) for everything in the search paths, in search order."""
    cache = hf_cache_dir()
    for i, root in enumerate(search_paths(config_dirs)):
        if root == cache or (root.exists() and cache.exists() and root.resolve() == cache.resolve()):
            for repo_id, snap in _cache_repos(root):
                for path, name in _walk(snap, prefix=repo_id):
                    yield i, path, name
        else:
            for path, name in _walk(root):
                yield i, path, name


def list_models(config_dirs=None) -> list[ModelRef]:
    """Every model found in the search paths; files that are not models are skipped."""
    out = []
    for _, path, name in _candidates(config_dirs):
        try:
            out.append(describe(path, name))
        except ModelError:
            continue  # a VAE alone, a text encoder, a broken download: not listed
    return out


def _aliases(path: Path, name: str) -> set[str]:
    names = {name, path.name, path.stem}
    if "/" in name:
        names.add(name.rsplit("/", 1)[1])
    return {n.lower() for n in names}


def _looks_like_path(text: str) -> bool:
    """A path, not a name: it exists, starts like a path, or is a folder/file.ext path.
    (A hub repo id such as owner/name, or a bare file name, that is not a local path
    counts as a name.)"""
    return (
        Path(text).expanduser().exists()
        or text.startswith(("/", "./", "../", "~"))
        or (os.sep in text and text.lower().endswith(WEIGHT_SUFFIXES))
    )


def find(kind: str, path_or_name: str, config_dirs=None) -> ModelRef:
    """A model of `kind` by path, by name (file stem, folder name, hub repo id) or pull name."""
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    text = str(path_or_name).strip()
    if not text:
        raise ModelError(f"empty {kind} name; expected a path or a model name")
    if _looks_like_path(text):
        ref = describe(text)
        _check_kind(ref, kind)
        return ref

    wanted = {text.lower()}
    if text in PULLABLE:  # a pull name stands for its repo
        wanted.add(PULLABLE[text].repo_id.lower())
    matches, others, seen_names = [], [], []
    for root_index, path, name in _candidates(config_dirs):
        seen_names.append(name)
        al = _aliases(path, name)
        repo_hit = any(name.lower().startswith(w + "/") for w in wanted)
        if not (al & wanted or repo_hit):
            continue
        try:
            ref = describe(path, name)
        except ModelError as e:
            others.append(str(e))
            continue
        if ref.kind == kind:
            matches.append((root_index, ref))
        else:
            others.append(ref)
    if matches:
        # The first search folder wins; within it an exact name beats a file inside a
        # matching repo, and a diffusers folder beats a single file of the same name
        # (it loads without borrowing configs).
        first = [m for i, m in matches if i == matches[0][0]]
        first.sort(key=lambda m: (not (_aliases(m.path, m.name) & wanted), m.format != "diffusers"))
        return first[0]
    if others:
        o = others[0]
        if isinstance(o, ModelRef):
            raise ModelError(f"{text!r} is a {o.kind}: {o}; expected a {kind}")
        raise ModelError(f"{text!r} was found but cannot be used as a {kind}: {o}")
    roots = ", ".join(str(p) for p in search_paths(config_dirs)) or "(no search folders exist)"
    close = difflib.get_close_matches(text, sorted(set(seen_names)), n=3, cutoff=0.5)
    hint = f"; close names: {', '.join(close)}" if close else ""
    by_repo = {p.repo_id.lower(): p.name for p in PULLABLE.values()}
    pull_name = text if text in PULLABLE else by_repo.get(text.lower())
    pull = f"; `lofid models pull {pull_name}` downloads it" if pull_name else ""
    raise ModelError(f"no {kind} named {text!r} in {roots}{hint}{pull}")


def _check_kind(ref: ModelRef, kind: str) -> None:
    if ref.kind != kind:
        raise ModelError(f"{ref.path}: is a {ref.kind} ({ref.format}); expected a {kind}")


# --- verifying -------------------------------------------------------------------------------

def _weights_in(folder: Path) -> Path | None:
    for stem in ("diffusion_pytorch_model", "model"):
        for suffix in (".safetensors", ".fp16.safetensors", ".bin", ".fp16.bin"):
            p = folder / (stem + suffix)
            if p.is_file():
                return p
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    return found[0] if found else None


def motion_channels(keys) -> tuple[int, ...]:
    """Channels of each down level's motion modules, from their proj_in weights."""
    per: dict[int, int] = {}
    for k, shape in dict(keys).items():
        m = re.match(r"(?:.*\.)?down_blocks\.(\d+)\.motion_modules\.0\.(?:temporal_transformer\.)?proj_in\.weight$", k)
        if m:
            per[int(m.group(1))] = int(shape[0])
    return tuple(per[i] for i in sorted(per))


def unet_channels_of_checkpoint(keys) -> tuple[int, ...]:
    """block_out_channels of an original-layout checkpoint's UNet.

    input_blocks are numbered through all levels; a downsampler (…0.op.weight) ends a
    level, and a level's channels are those of its first resnet's output.
    """
    keys = dict(keys)
    pre = "model.diffusion_model.input_blocks."
    chans, level_open = [], False
    for i in range(1, 64):
        if f"{pre}{i}.0.op.weight" in keys:
            level_open = False
            continue
        res = keys.get(f"{pre}{i}.0.out_layers.3.weight")
        if res is None:
            if not any(k.startswith(f"{pre}{i}.") for k in keys):
                break
            continue
        if not level_open:
            chans.append(int(res[0]))
            level_open = True
    return tuple(chans)


def _cross_dim_of_checkpoint(keys) -> int | None:
    for k, shape in keys.items():
        if k.startswith("model.diffusion_model.") and k.endswith("attn2.to_k.weight"):
            return int(shape[1])
    return None


def verify(ref: ModelRef) -> list[str]:
    """Problems with a model (empty list = fine), from configs and headers only."""
    path = Path(ref.path)
    if not path.exists():
        return [f"{path}: missing (expected a {ref.kind})"]
    try:
        actual = describe(path, ref.name)
    except ModelError as e:
        return [str(e)]
    problems = []
    if actual.kind != ref.kind:
        problems.append(f"{path}: is a {actual.kind}, expected a {ref.kind}")
        return problems
    if actual.format != ref.format:
        problems.append(f"{path}: is in {actual.format} format, expected {ref.format}")
    if ref.kind == "checkpoint":
        problems += _verify_checkpoint(path)
    elif ref.kind == "motion_adapter":
        problems += _verify_motion(path)
    else:
        problems += _verify_lora(path)
    return problems


def _verify_checkpoint(path: Path) -> list[str]:
    problems = []
    if path.is_dir():
        index = _read_json(path / "model_index.json")
        family = checkpoint_family(path)
        sdxl = family == "sdxl"
        parts = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
        if sdxl:
            parts += ("text_encoder_2", "tokenizer_2")
        for part in parts:
            if part not in index or index[part] in (None, [None, None]):
                problems.append(f"{path}: model_index.json has no {part} (expected an "
                                f"{family_name(family)} pipeline)")
        cfgs = {}
        for part in ("unet", "vae", "text_encoder") + (("text_encoder_2",) if sdxl else ()):
            sub = path / part
            if not (sub / "config.json").is_file():
                problems.append(f"{sub}: missing config.json")
                continue
            cfgs[part] = _read_json(sub / "config.json")
            w = _weights_in(sub)
            if w is None:
                problems.append(f"{sub}: no weights file (expected diffusion_pytorch_model.safetensors or model.safetensors)")
                continue
            if w.suffix == ".safetensors":
                try:
                    keys = read_header(w)
                except ModelError as e:
                    problems.append(str(e))
                    continue
                if part == "unet":
                    conv = keys.get("conv_in.weight")
                    want = (cfgs["unet"].get("block_out_channels", [None])[0], cfgs["unet"].get("in_channels", 4), 3, 3)
                    if conv is not None and tuple(conv) != tuple(want):
                        problems.append(f"{w}: conv_in.weight has shape {tuple(conv)}, its config says {want}")
        for tok in (path / "tokenizer",) + ((path / "tokenizer_2",) if sdxl else ()):
            if not any((tok / f).is_file() for f in ("vocab.json", "tokenizer.json")):
                problems.append(f"{tok}: no tokenizer files (expected vocab.json + merges.txt or tokenizer.json)")
        encoders = ("text_encoder", "text_encoder_2") if sdxl else ("text_encoder",)
        if "unet" in cfgs and all(e in cfgs for e in encoders):
            # SDXL's UNet attends to both encoders' features side by side
            cross = cfgs["unet"].get("cross_attention_dim")
            hiddens = [cfgs[e].get("hidden_size") for e in encoders]
            if cross is not None and None not in hiddens and cross != sum(hiddens):
                what = " + ".join(f"{e} hidden_size {h}" for e, h in zip(encoders, hiddens))
                problems.append(f"{path}: UNet cross_attention_dim {cross} != {what}")
        return problems
    keys = read_header(path)
    # SD1.5 files hold the text encoder under cond_stage_model, SDXL files both under conditioner
    text = "conditioner.embedders." if checkpoint_family(path) == "sdxl" else "cond_stage_model."
    for prefix, what in (("model.diffusion_model.", "UNet"), ("first_stage_model.", "VAE"),
                         (text, "text encoder")):
        if not any(k.startswith(prefix) for k in keys):
            problems.append(f"{path}: no {what} weights ({prefix}*)")
    conv = keys.get("model.diffusion_model.input_blocks.0.0.weight")
    if conv is not None and (len(conv) != 4 or conv[1] != 4):
        problems.append(f"{path}: UNet input conv has shape {conv}, expected (C, 4, 3, 3) (a 4-channel latent UNet)")
    return problems


def _verify_motion(path: Path) -> list[str]:
    problems = []
    if path.is_dir():
        cfg = _read_json(path / "config.json")
        w = _weights_in(path)
        if w is None:
            return [f"{path}: no weights file (expected diffusion_pytorch_model.safetensors)"]
        if w.suffix != ".safetensors":
            return problems
        keys = read_header(w)
        want = tuple(cfg.get("block_out_channels", ()))
        have = motion_channels(keys)
        if want and have != want:
            problems.append(f"{w}: motion modules have channels {have}, its config says {want}")
        return problems
    keys = read_header(path)
    if not motion_channels(keys):
        problems.append(f"{path}: no down_blocks.*.motion_modules.*.proj_in weights (expected a motion module)")
    return problems


def _verify_lora(path: Path) -> list[str]:
    keys = read_header(path)
    problems = []
    downs = {k: s for k, s in keys.items() if re.search(r"(lora_down|lora\.down|lora_A)", k)}
    for k, s in downs.items():
        up_key = (k.replace("lora_down", "lora_up").replace("lora.down", "lora.up").replace("lora_A", "lora_B"))
        up = keys.get(up_key)
        if up is None:
            problems.append(f"{path}: {k} has no matching {up_key}")
        elif len(s) >= 2 and len(up) >= 2 and s[0] != up[1]:
            problems.append(f"{path}: rank mismatch: {k} {s} vs {up_key} {up}")
    if not downs:
        problems.append(f"{path}: no LoRA down/A weights found (expected a LoRA)")
    return problems


# --- loading ---------------------------------------------------------------------------------

def _to_diffusers_motion_keys(sd: dict) -> dict:
    """Original motion-module names -> diffusers MotionAdapter names (position tables dropped:
    diffusers computes them)."""
    out = {}
    for k, v in sd.items():
        if "pos_encoder" in k:
            continue
        k = (k.replace(".temporal_transformer.", ".")
             .replace(".attention_blocks.0.", ".attn1.").replace(".attention_blocks.1.", ".attn2.")
             .replace(".norms.0.", ".norm1.").replace(".norms.1.", ".norm2.").replace(".ff_norm.", ".norm3."))
        out[k] = v
    return out


def motion_config_from_keys(keys) -> dict:
    """A MotionAdapter config from a motion module's tensor names and shapes.

    Head count cannot be read from shapes; the published motion modules all use 8.
    """
    keys = dict(keys)
    chans = motion_channels(keys)
    if not chans:
        raise ModelError("no down_blocks.*.motion_modules.*.proj_in weights; expected a motion module")
    per_block = len({m.group(1) for k in keys for m in [re.match(r"down_blocks\.0\.motion_modules\.(\d+)\.", k)] if m})
    layers = {int(m.group(1)) for k in keys
              for m in [re.match(r"down_blocks\.0\.motion_modules\.0\.(?:temporal_transformer\.)?transformer_blocks\.(\d+)\.", k)] if m}
    seq = 32
    for k, s in keys.items():
        if k.endswith("pos_encoder.pe") and len(s) == 3:
            seq = int(s[1])
            break
    return dict(
        block_out_channels=chans,
        motion_layers_per_block=per_block,
        motion_transformer_layers_per_block=max(layers) + 1 if layers else 1,
        motion_mid_block_layers_per_block=1,
        motion_num_attention_heads=8,
        motion_norm_num_groups=32,
        motion_max_seq_length=seq,
        use_motion_mid_block=any(k.startswith("mid_block.motion_modules.") for k in keys),
    )


def _load_state_dict(path: Path) -> dict:
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


def load_motion_adapter(ref: ModelRef, dtype=None, config=None):
    """A diffusers MotionAdapter from a folder, an original motion module or a diffusers-layout file.

    `config`: a dict or a MotionAdapter folder whose config to use for single files
    (otherwise derived from the file's shapes).
    """
    _check_kind(ref, "motion_adapter")
    from diffusers import MotionAdapter

    path = Path(ref.path)
    if ref.format == "diffusers":
        try:
            return MotionAdapter.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        except Exception as e:
            raise ModelError(f"{path}: could not load the MotionAdapter folder ({e})") from e
    keys = read_header(path)
    if isinstance(config, (str, Path)):
        cfg = {k: v for k, v in _read_json(Path(config) / "config.json").items() if not k.startswith("_")}
    elif isinstance(config, dict):
        cfg = dict(config)
    else:
        cfg = motion_config_from_keys(keys)
    sd = _load_state_dict(path)
    if ref.format == "original_mm":
        sd = _to_diffusers_motion_keys(sd)
    adapter = MotionAdapter(**cfg)
    missing, unexpected = adapter.load_state_dict(sd, strict=False)
    # Position tables are computed, not loaded; anything else missing is a real mismatch.
    missing = [k for k in missing if "pos_embed" not in k]
    if missing or unexpected:
        raise ModelError(
            f"{path}: motion module does not fit a MotionAdapter with {cfg}: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    if dtype is not None:
        adapter = adapter.to(dtype)
    return adapter


def variant_of(folder: Path) -> str | None:
    """"fp16" when a pipeline folder holds only fp16 weight files (as `pull` fetches them)."""
    unet = Path(folder) / "unet"
    if any(unet.glob("diffusion_pytorch_model.safetensors")) or any(unet.glob("diffusion_pytorch_model.bin")):
        return None
    return "fp16" if any(unet.glob("diffusion_pytorch_model.fp16.*")) else None


def _unet_channels(checkpoint: ModelRef) -> tuple[int, ...]:
    if checkpoint.format == "diffusers":
        cfg = _read_json(Path(checkpoint.path) / "unet" / "config.json")
        return tuple(cfg.get("block_out_channels", ()))
    return unet_channels_of_checkpoint(read_header(Path(checkpoint.path)))


def config_folder_for(checkpoint: ModelRef, config_dirs=None) -> Path:
    """A local diffusers pipeline folder whose configs and tokenizer fit a single-file checkpoint."""
    keys = read_header(Path(checkpoint.path))
    chans = unet_channels_of_checkpoint(keys)
    cross = _cross_dim_of_checkpoint(keys)
    family = checkpoint_family(checkpoint.path)
    tokenizers = ("tokenizer", "tokenizer_2") if family == "sdxl" else ("tokenizer",)
    # The checkpoint's own folder first: users keep a matching diffusers folder beside it.
    for ref in list_models([Path(checkpoint.path).parent] + list(config_dirs or [])):
        if ref.kind != "checkpoint" or ref.format != "diffusers":
            continue
        try:
            cfg = _read_json(Path(ref.path) / "unet" / "config.json")
            if checkpoint_family(ref.path) != family:
                continue
        except ModelError:
            continue
        if tuple(cfg.get("block_out_channels", ())) == chans and cfg.get("cross_attention_dim") == cross \
                and all((Path(ref.path) / t).is_dir() for t in tokenizers):
            return Path(ref.path)
    hint = ("; `lofid models pull dreamshaper-8` fetches one" if family == "sd15"
            else "; keep the SDXL base model's diffusers folder "
                 "(stabilityai/stable-diffusion-xl-base-1.0) among the models")
    raise ModelError(
        f"{checkpoint.path}: a single-file {family_name(family)} checkpoint needs a diffusers folder of the "
        f"same family (UNet channels {chans}, cross attention {cross}) for its configs and tokenizers, "
        f"and none was found in the model folders{hint}"
    )


def _motion_unet(unet, adapter):
    """The UNetMotionModel for an SDXL UNet and a motion adapter, complete.

    diffusers' UNetMotionModel.from_unet2d copies the blocks and the timestep embedding
    but not SDXL's add_embedding (the MLP that turns pooled text and size ids into the
    timestep embedding), leaving it at its random initial values: the checkpoint's own
    weights are copied over here.
    """
    from diffusers import UNetMotionModel

    motion = UNetMotionModel.from_unet2d(unet, adapter)
    if getattr(unet, "add_embedding", None) is not None and getattr(motion, "add_embedding", None) is not None:
        motion.add_embedding.load_state_dict(unet.add_embedding.state_dict())
    return motion


def load_pipeline(checkpoint: ModelRef, motion_adapter: ModelRef, device="cpu", dtype=None, *,
                  config=None, config_dirs=None):
    """The AnimateDiff pipeline for a checkpoint and a motion adapter of one family:
    AnimateDiffPipeline for SD1.5, AnimateDiffSDXLPipeline for SDXL.

    config: for a single-file checkpoint, the diffusers folder that supplies configs and
    tokenizer(s) (found among the models by matching shapes when not given).
    """
    _check_kind(checkpoint, "checkpoint")
    _check_kind(motion_adapter, "motion_adapter")
    for ref in (checkpoint, motion_adapter):
        if not Path(ref.path).exists():
            raise ModelError(f"{ref.path}: missing (expected a {ref.kind})")
    # Shapes first: a mismatched pair fails here with names, not deep inside diffusers.
    unet_ch = _unet_channels(checkpoint)
    if Path(motion_adapter.path).is_dir():
        mcfg = _read_json(Path(motion_adapter.path) / "config.json")
        mot_ch = tuple(mcfg.get("block_out_channels", ()))
    else:
        mot_ch = motion_channels(read_header(Path(motion_adapter.path)))
    family = checkpoint_family(checkpoint.path)
    if unet_ch and mot_ch and unet_ch != mot_ch:
        made_for = _PUBLISHED_MOTION_CHANNELS.get(mot_ch)
        made = (f", an {family_name(made_for)} motion adapter" if made_for and made_for != family
                else "")
        raise ModelError(
            f"{motion_adapter.path}: motion adapter (channels {mot_ch}{made}) does not fit the "
            f"{family_name(family)} checkpoint {checkpoint.path} (UNet channels {unet_ch}); expected an "
            f"{family_name(family)} motion adapter (e.g. {_MOTION_EXAMPLE[family]}): motion adapters "
            "and checkpoints of different families (SD1.5, SDXL) cannot be mixed"
        )
    if family == "sdxl":
        from diffusers import AnimateDiffSDXLPipeline as AnimateDiffPipeline
    else:
        from diffusers import AnimateDiffPipeline

    adapter = load_motion_adapter(motion_adapter, dtype=dtype)
    path = Path(checkpoint.path)
    try:
        if checkpoint.format == "diffusers":
            extra = {}
            if family == "sdxl":
                from diffusers import UNet2DConditionModel

                unet = UNet2DConditionModel.from_pretrained(
                    str(path), subfolder="unet", dtype=dtype, local_files_only=True,
                    variant=variant_of(path))
                extra["unet"] = _motion_unet(unet, adapter)
            # SD repos also hold a safety checker and an image processor; AnimateDiff
            # needs neither, and loading them costs time and memory.
            pipe = AnimateDiffPipeline.from_pretrained(
                str(path), motion_adapter=adapter, dtype=dtype, local_files_only=True,
                feature_extractor=None, image_encoder=None, variant=variant_of(path), **extra,
            )
        else:
            cfg_dir = Path(config) if config else config_folder_for(checkpoint, config_dirs)
            extra = {}
            if family == "sdxl":
                from diffusers import UNet2DConditionModel

                unet = UNet2DConditionModel.from_single_file(
                    str(path), config=str(cfg_dir), subfolder="unet", dtype=dtype,
                    local_files_only=True)
                extra["unet"] = _motion_unet(unet, adapter)
            pipe = AnimateDiffPipeline.from_single_file(
                str(path), config=str(cfg_dir), motion_adapter=adapter, dtype=dtype,
                local_files_only=True, feature_extractor=None, image_encoder=None, **extra,
            )
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"{path}: could not be loaded as an {family_name(family)} checkpoint "
                         f"({type(e).__name__}: {e})") from e
    return pipe.to(device)


# --- downloading -----------------------------------------------------------------------------

def pull(names=DEFAULT_SET, progress=True) -> list[Path]:
    """Download the named models into the Hugging Face cache; the only network access here."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in PULLABLE]
    if unknown:
        raise ModelError(f"unknown model {unknown[0]!r} to pull; expected one of {', '.join(PULLABLE)}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelError(
            f"cannot pull {', '.join(names)}: HF_HUB_OFFLINE is set, so downloads are off; "
            "unset HF_HUB_OFFLINE to download"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if progress else disable_progress_bars)()
    out = []
    for n in names:
        p = PULLABLE[n]
        try:
            path = Path(snapshot_download(
                p.repo_id, allow_patterns=list(p.allow_patterns) if p.allow_patterns else None,
                ignore_patterns=list(p.ignore_patterns) if p.ignore_patterns else None,
                cache_dir=str(hf_cache_dir()),
            ))
            if p.kind == "checkpoint" and any("no weights file" in q for q in _verify_checkpoint(path)):
                # the repo has no fp16 variant: take its full-precision weights instead
                path = Path(snapshot_download(
                    p.repo_id, allow_patterns=["model_index.json", "*/*.json", "tokenizer/*", "tokenizer_2/*",
                                               "unet/*.safetensors", "vae/*.safetensors",
                                               "text_encoder/*.safetensors", "text_encoder_2/*.safetensors"],
                    ignore_patterns=list(p.ignore_patterns or ()), cache_dir=str(hf_cache_dir()),
                ))
            out.append(path)
        except Exception as e:
            raise ModelError(f"could not download {n} ({p.repo_id}): {type(e).__name__}: {e}") from e
    return out
