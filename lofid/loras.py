"""LoRAs on an AnimateDiff pipeline: one style LoRA and several motion LoRAs at once.

A style LoRA changes how the pictures look (the UNet's spatial attention and, often,
the text encoder); a motion LoRA changes how they move (the motion modules' temporal
attention). Both are loaded through diffusers' peft backend as named adapters, so that
each keeps its own weight (`set_adapters`).

Adapters are loaded once per pipeline and kept, keyed by file: switching LoRAs between
loops only changes which adapters are active and with what weight. The base model is
never reloaded, and adapters that have not been used for a while are deleted so that
memory stays bounded. A LoRA at weight 0 is left out of the active set, and loading or
deleting an adapter leaves the base weights exactly as they were (values and flags), so
the picture is the base picture bit for bit on every CPU.

`fuse(pipe)` merges the active adapters into the base weights (faster denoising when
the same LoRAs are used loop after loop); `apply_loras` undoes that by itself when the
set changes, restoring the saved base weights exactly.

torch and diffusers are imported only inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lofid.errors import BadArgument, UserError

# Weights past this are almost always a typo ("style:75" for 0.75); real LoRAs are used
# between about -2 and 2.
MAX_WEIGHT = 5.0

# Adapters kept loaded but inactive, per pipeline, before the least recently used are deleted.
MAX_IDLE_ADAPTERS = 4

LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")

# A key touches the motion modules (temporal attention) when it contains one of these.
_MOTION_MARKERS = ("motion_modules", "motion_module", "temporal_transformer")

# The start of something meant as a number: "0.8", "-1", ".5", "1e-1", "0,8", "1.2.3".
_NUMBER_START = re.compile(r"^[+-]?(\d|\.\d)")


class LoraError(UserError, ValueError):
    """A LoRA that cannot be used: names the file, what it holds and what was expected."""


# --- command-line form -------------------------------------------------------------------

def parse_lora_arg(text: str) -> tuple[str, float]:
    """"file_or_name[:weight]" -> (file_or_name, weight); weight 1.0 when not given.

    The weight is what follows the last colon when that looks like a number. A colon
    followed by something else ("my:lora.safetensors") is part of the file name, and an
    existing file whose name ends in ":0.5" is taken as a file.
    """
    if not isinstance(text, str):
        raise BadArgument(f"LoRA argument {text!r} is not text: expected FILE_OR_NAME[:WEIGHT]")
    text = text.strip()
    if not text:
        raise BadArgument("LoRA argument is empty: expected FILE_OR_NAME[:WEIGHT], e.g. ghibli:0.8")
    head, colon, tail = text.rpartition(":")
    if not colon or os.path.exists(text):
        return text, 1.0
    tail = tail.strip()
    if "/" in tail or "\\" in tail:
        return text, 1.0            # "dir:x/lora.safetensors": the colon is part of a path
    if tail and not _NUMBER_START.match(tail) and tail.lower() not in ("nan", "inf", "-inf", "+inf", "infinity"):
        return text, 1.0            # "my:lora": the colon is part of the name
    name = head.strip()
    if not name:
        raise BadArgument(f"LoRA argument {text!r} has a weight but no file or name before the colon: "
                         "expected FILE_OR_NAME[:WEIGHT]")
    if not tail:
        raise BadArgument(f"LoRA argument {text!r} ends in a colon with no weight: "
                         f"expected a number after it, e.g. {name}:0.8")
    try:
        weight = float(tail)
    except ValueError:
        raise BadArgument(f"LoRA weight {tail!r} in {text!r} is not a number: "
                         f"expected e.g. {name}:0.8 (a dot, not a comma, for decimals)") from None
    return name, check_weight(weight, what=f"LoRA weight in {text!r}")


def check_weight(weight, what: str = "LoRA weight") -> float:
    """A finite weight in [-MAX_WEIGHT, MAX_WEIGHT], as float; ValueError otherwise."""
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise BadArgument(f"{what} {weight!r} is not a number: expected a number "
                         f"between {-MAX_WEIGHT:g} and {MAX_WEIGHT:g}") from None
    if not math.isfinite(value) or abs(value) > MAX_WEIGHT:
        raise BadArgument(f"{what} {weight!r} is out of range: expected a number "
                         f"between {-MAX_WEIGHT:g} and {MAX_WEIGHT:g} (usually 0 to 1.5)")
    return value


def resolve(args, kind: str = "lora", config_dirs=None) -> list:
    """Command-line LoRA arguments -> [(ModelRef, weight)], found through lofid.models.

    `args` are "file_or_name[:weight]" strings or (file_or_name, weight) pairs; `kind` is
    "lora" (style) or "motion_lora".
    """
    from lofid import models

    if kind not in ("lora", "motion_lora"):
        raise ValueError(f"LoRA kind {kind!r} is unknown: expected 'lora' or 'motion_lora'")
    out = []
    for arg in args:
        name, weight = parse_lora_arg(arg) if isinstance(arg, str) else (arg[0], check_weight(arg[1]))
        out.append((models.find(kind, str(name), config_dirs=config_dirs), weight))
    return out


# --- what a file holds ---------------------------------------------------------------------

def lora_keys(path) -> list[str]:
    """The tensor names in a LoRA file (a safetensors header is read without the weights)."""
    path = _weights_file(Path(path))
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        except Exception as e:  # a truncated or foreign file
            raise LoraError(f"{path}: not a readable .safetensors LoRA file ({e})") from None
    return list(_load_state_dict(path))


def lora_format(keys) -> str:
    """The key layout of a LoRA; LoraError when the keys are not a LoRA's.

    "kohya": lora_unet_/lora_te_ keys; "peft": diffusers/peft keys (lora_A/lora_B,
    lora.down/lora.up); "original_motion": the AnimateDiff repository's motion LoRAs
    (...temporal_transformer...attention_blocks.N.processor.to_q_lora.down...).
    """
    keys = list(keys)
    if not keys:
        raise LoraError("the file holds no tensors: expected LoRA weights")
    if all(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in keys):
        return "kohya"
    if all("lora" in k for k in keys if "pos_encoder" not in k):
        # The AnimateDiff repository's own motion LoRAs (v2_lora_*.ckpt) keep its module names.
        if any("temporal_transformer" in k for k in keys) and not any(k.startswith("unet.") for k in keys):
            return "original_motion"
        return "peft"
    odd = next(k for k in keys if "lora" not in k)
    raise LoraError(f"key {odd!r} is not a LoRA key: expected peft/diffusers keys "
                    "(...lora_A/lora_B...) or kohya keys (lora_unet_...)")


def is_motion_key(key: str) -> bool:
    return any(m in key for m in _MOTION_MARKERS)


# --- applying them ---------------------------------------------------------------------------

@dataclass
class _Adapter:
    name: str                      # the adapter name inside the pipeline
    stamp: tuple                   # (size, mtime_ns) of the file when it was loaded


@dataclass
class _PipeLoras:
    """What this module has done to one pipeline."""
    loaded: OrderedDict = field(default_factory=OrderedDict)   # file path -> _Adapter, LRU order
    active: tuple = ()             # ((adapter name, weight), ...) in effect now
    fused: tuple | None = None     # the `active` that is merged into the base weights
    saved: list = field(default_factory=list)   # (base layer, its weight and bias before fusing)


_STATE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _state(pipe) -> _PipeLoras:
    state = _STATE.get(pipe)
    if state is None:
        state = _STATE[pipe] = _PipeLoras()
    return state


def loaded_adapters(pipe) -> dict[str, str]:
    """File path -> adapter name of the LoRAs loaded into `pipe` by apply_loras."""
    return {path: a.name for path, a in _state(pipe).loaded.items()}


def active_adapters(pipe) -> list[tuple[str, float]]:
    """(adapter name, weight) of the LoRAs in effect on `pipe`."""
    return list(_state(pipe).active)


def apply_loras(pipe, styles, motions) -> None:
    """Make exactly these LoRAs active on `pipe`, each with its weight.

    `styles` and `motions` are lists of (ModelRef, weight) (a ModelRef needs .path, .name
    and .kind). Files are loaded on first use and kept; a LoRA not listed is deactivated
    (and deleted once more than MAX_IDLE_ADAPTERS are idle). With both lists empty the
    pipeline gives exactly its base output again.
    """
    state = _state(pipe)
    wanted: list[tuple[str, float]] = []
    seen: dict[str, str] = {}
    try:
        for role, items in (("style", styles), ("motion", motions)):
            for item in items:
                ref, weight = _unpack(item, role)
                weight = check_weight(weight, what=f"weight of {role} LoRA {ref.name!r}")
                path = _weights_file(Path(ref.path))
                key = str(path.resolve())
                if key in seen:
                    raise LoraError(f"{path}: given twice (as {seen[key]} and as {role} LoRA): "
                                    "expected each LoRA once, with one weight")
                seen[key] = f"{role} LoRA"
                name = _ensure_loaded(pipe, state, path, ref, role)
                if weight != 0.0:   # weight 0 leaves the base weights untouched, bit for bit
                    wanted.append((name, weight))
    except Exception:
        # Loading a file makes it the active adapter: put back the LoRAs in effect before.
        _activate(pipe, state, state.active)
        raise
    _activate(pipe, state, tuple(wanted))
    _forget_idle(pipe, state)


def fuse(pipe) -> bool:
    """Merge the active LoRAs into the base weights for speed; True when it fused now.

    The base weights of every layer that changes are kept (on the CPU) so that unfusing
    restores them exactly, not up to rounding.
    """
    state = _state(pipe)
    if not state.active or state.fused == state.active:
        return False
    if state.fused is not None:
        unfuse(pipe)
    state.saved = _save_base_weights(pipe, [n for n, _ in state.active])
    with _base_untouched(pipe):
        pipe.fuse_lora(adapter_names=[n for n, _ in state.active], lora_scale=1.0)
    state.fused = state.active
    return True


def unfuse(pipe) -> bool:
    """Undo `fuse` exactly; True when something was fused."""
    state = _state(pipe)
    if state.fused is None:
        return False
    import torch

    with _base_untouched(pipe):
        pipe.unfuse_lora()
    with torch.no_grad():       # subtracting the merged delta leaves rounding: put the originals back
        for layer, weight, bias in state.saved:
            layer.weight.copy_(weight.to(layer.weight.device, layer.weight.dtype))
            if bias is not None:
                layer.bias.copy_(bias.to(layer.bias.device, layer.bias.dtype))
    state.saved = []
    state.fused = None
    return True


def unload_all(pipe) -> None:
    """Remove every LoRA this module loaded into `pipe` (the base model stays)."""
    state = _state(pipe)
    unfuse(pipe)
    names = [a.name for a in state.loaded.values()]
    if names:
        _delete(pipe, names)
    state.loaded.clear()
    state.active = ()


# --- helpers ---------------------------------------------------------------------------------

def _unpack(item, role):
    try:
        ref, weight = item
    except (TypeError, ValueError):
        raise ValueError(f"{role} LoRA entry {item!r} is not a (ModelRef, weight) pair") from None
    if not hasattr(ref, "path"):
        raise ValueError(f"{role} LoRA entry {item!r}: expected a ModelRef (from lofid.models.find) "
                         "and a weight")
    expected = "motion_lora" if role == "motion" else "lora"
    kind = getattr(ref, "kind", expected)
    if kind != expected:
        raise LoraError(f"{ref.path}: is a {kind}, given as a {role} LoRA: expected a {expected}")
    return ref, weight


def _weights_file(path: Path) -> Path:
    """The weights file of a LoRA given as a file or as a folder holding one."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in LORA_SUFFIXES)
        preferred = [p for p in files if p.name in ("pytorch_lora_weights.safetensors",
                                                     "diffusion_pytorch_model.safetensors")]
        files = preferred or files
        if len(files) != 1:
            raise LoraError(f"{path}: folder holds {len(files)} weight files "
                            f"({', '.join(p.name for p in files) or 'none'}): expected one LoRA file")
        return files[0]
    if not path.is_file():
        raise LoraError(f"{path}: no such LoRA file")
    if path.suffix not in LORA_SUFFIXES:
        raise LoraError(f"{path}: unknown LoRA file type {path.suffix!r}: expected one of "
                        f"{', '.join(LORA_SUFFIXES)}")
    return path


def _load_state_dict(path: Path) -> dict:
    """Weights of a LoRA file; pickled files only through torch.load(weights_only=True)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise LoraError(f"{path}: cannot be read as a weights-only checkpoint ({e})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise LoraError(f"{path}: holds a {type(sd).__name__}: expected a dict of LoRA tensors")
    return sd


def _original_motion_to_diffusers(sd: dict) -> dict:
    """AnimateDiff-repository motion LoRA keys -> diffusers UNet keys (prefixed "unet.").

    Module names follow diffusers' motion modules (attention_blocks.0/1 -> attn1/attn2, no
    temporal_transformer level); diffusers itself maps processor.to_q_lora.down/up to peft.
    """
    out = {}
    for key, value in sd.items():
        if "pos_encoder" in key:    # a fixed sinusoid, recomputed by diffusers
            continue
        key = (key.replace(".temporal_transformer.", ".")
               .replace(".attention_blocks.0.", ".attn1.")
               .replace(".attention_blocks.1.", ".attn2."))
        out["unet." + key] = value
    return out


def _adapter_name(path: Path, role: str) -> str:
    # Adapter names become module keys inside the model: no dots; the hash keeps two
    # files with the same stem apart.
    stem = re.sub(r"[^0-9A-Za-z_]", "_", path.stem)[:40]
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{role}_{stem}_{digest}"


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns)


def _pipeline_adapters(pipe) -> set[str]:
    try:
        return {n for names in pipe.get_list_adapters().values() for n in names}
    except Exception:  # no peft layers at all yet
        return set()


def _ensure_loaded(pipe, state: _PipeLoras, path: Path, ref, role: str) -> str:
    key = str(path.resolve())
    have = state.loaded.get(key)
    if have is not None:
        if have.stamp == _stamp(path) and have.name in _pipeline_adapters(pipe):
            state.loaded.move_to_end(key)
            return have.name
        # The file changed on disk (or someone unloaded it): load it again.
        _drop(pipe, state, key)

    keys = lora_keys(path)
    try:
        fmt = lora_format(keys)
    except LoraError as e:
        raise LoraError(f"{path}: {e}") from None
    motion = [k for k in keys if is_motion_key(k)]
    if role == "motion" and not motion:
        raise LoraError(f"{path}: has no motion-module keys, so it is not a motion LoRA: "
                        "expected keys under motion_modules (use it as a style LoRA, --lora)")
    if role == "style" and motion and len(motion) == len(keys):
        raise LoraError(f"{path}: touches only the motion modules, so it is a motion LoRA: "
                        "use it with --motion-lora")
    if fmt == "kohya" and motion:
        raise LoraError(f"{path}: kohya-format motion LoRA (lora_unet_..._motion_modules_... keys) "
                        "is not supported: expected a diffusers/peft motion LoRA "
                        "(e.g. from the guoyww/animatediff-motion-lora-* repositories)")

    name = _adapter_name(path, role)
    if state.fused is not None:
        unfuse(pipe)            # loading into fused layers would merge on top of a merge
    before = _pipeline_adapters(pipe)
    try:
        with _base_untouched(pipe):
            if fmt == "original_motion":
                pipe.load_lora_weights(_original_motion_to_diffusers(_load_state_dict(path)), adapter_name=name)
            elif path.suffix == ".safetensors":
                # By path, so that diffusers reads the LoRA's own config (rank, alpha) from the header.
                pipe.load_lora_weights(str(path), adapter_name=name)
            else:
                pipe.load_lora_weights(_load_state_dict(path), adapter_name=name)
    except Exception as e:
        _remove_partial(pipe, name, before)
        raise LoraError(f"{path}: could not be loaded as a {fmt}-format {role} LoRA ({e}): "
                        "expected a LoRA for an SD1.5-family AnimateDiff pipeline") from None
    if name not in _pipeline_adapters(pipe):
        raise LoraError(f"{path}: none of its {len(keys)} keys ({fmt} format) matched a layer of this "
                        "pipeline: expected a LoRA for an SD1.5-family model (is it for SDXL or another family?)")
    state.loaded[key] = _Adapter(name=name, stamp=_stamp(path))
    return name


def _remove_partial(pipe, name, before):
    if name in _pipeline_adapters(pipe) and name not in before:
        try:
            _delete(pipe, [name])
        except Exception:   # already failing: the load error is the one to report
            pass


def _activate(pipe, state: _PipeLoras, wanted: tuple) -> None:
    if state.fused is not None and state.fused != wanted:
        # Changing weights under a merge would unmerge the wrong amount: unfuse first.
        unfuse(pipe)
    if wanted and state.fused == wanted:
        return                  # already merged with exactly these weights
    if not wanted:
        if _pipeline_adapters(pipe):
            pipe.disable_lora()
    else:
        pipe.enable_lora()
        pipe.set_adapters([n for n, _ in wanted], [w for _, w in wanted])
    state.active = wanted


def _forget_idle(pipe, state: _PipeLoras) -> None:
    active = {n for n, _ in state.active}
    idle = [k for k, a in state.loaded.items() if a.name not in active]   # oldest first
    for key in idle[:max(0, len(idle) - MAX_IDLE_ADAPTERS)]:
        _drop(pipe, state, key)


def _drop(pipe, state: _PipeLoras, key: str) -> None:
    adapter = state.loaded.pop(key)
    if adapter.name in _pipeline_adapters(pipe):
        if state.fused is not None:
            unfuse(pipe)
        _delete(pipe, [adapter.name])
    state.active = tuple((n, w) for n, w in state.active if n != adapter.name)


def _delete(pipe, names) -> None:
    import warnings

    with warnings.catch_warnings(), _base_untouched(pipe):
        # peft warns when an active adapter goes; here that is the point.
        warnings.filterwarnings("ignore", message=r"Adapter .* was active which is now deleted")
        pipe.delete_adapters(list(names))


@contextmanager
def _base_untouched(pipe):
    """Put back the requires_grad flag of every weight that was there before the block.

    peft marks the base weights as frozen when it loads or deletes an adapter (a
    training convenience). That flag is not only about training: for a batched input that
    is not contiguous, torch's matmul makes one matrix product of it when the weight
    requires grad and a batched product when not, so the flag picks the kernel, and on
    some CPUs (AMD EPYC with MKL) the two round differently. Keeping the flags keeps the
    base layers computing exactly as before, so that with no adapter active (all at
    weight 0, or none) the picture is the base picture bit for bit.
    """
    flags = [(p, p.requires_grad) for model in _models(pipe) for p in model.parameters()]
    try:
        yield
    finally:
        for param, flag in flags:
            if param.requires_grad != flag:
                param.requires_grad_(flag)


def _models(pipe) -> list:
    """The torch modules of a pipeline (UNet, text encoders, VAE, ...)."""
    components = getattr(pipe, "components", None) or {}
    return [m for m in components.values() if hasattr(m, "parameters") and hasattr(m, "named_modules")]


def _save_base_weights(pipe, names) -> list:
    """(layer, CPU copy of its weight, of its bias or None) for every base layer that
    fusing `names` changes, in every model of the pipeline (SDXL has two text encoders)."""
    import torch

    saved = []
    with torch.no_grad():
        for model in _models(pipe):
            for module in model.modules():
                lora_a = getattr(module, "lora_A", None)
                base = getattr(module, "base_layer", None)
                if lora_a is None or base is None or not any(n in lora_a for n in names):
                    continue
                bias = getattr(base, "bias", None)   # a LoRA with its own bias merges into it
                saved.append((base, base.weight.detach().to("cpu", copy=True),
                              None if bias is None else bias.detach().to("cpu", copy=True)))
    return saved
