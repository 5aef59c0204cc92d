"""The memory plan: how a job fits the GPU memory at hand (decode chunk, VAE tiling,
attention slicing, model offload, windows per UNet call), estimated from the free
memory before a loop, and applied to a pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from .windows import context_windows, default_stride

from lofid.errors import BadArgument


GiB = 1024 ** 3
MIN_CONTEXT = 4     # the shortest windows an out-of-memory retry goes down to
DECODE_CHUNK_MAX = 4


@dataclass
class MemoryPlan:
    """How to fit a job in the memory at hand (explicit options, never magic)."""
    decode_chunk: int = 16          # frames per VAE decode call (chunked decode)
    vae_tiling: bool = False        # decode each frame in tiles
    attention_slicing: bool = False
    cpu_offload: bool = False       # keep only the running model on the GPU
    window_batch: int = 1           # context windows per UNet call

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# fp16 weights of each family: all models, and what stays on the GPU with offload
# (UNet + motion module). SDXL: 2.6 B-parameter UNet, two text encoders (0.8 B), the
# SDXL motion module; counted from the architectures' parameter counts.
_WEIGHTS_GIB = {"sd15": (3.2, 1.8), "sdxl": (7.5, 5.6)}


def plan_memory(free_bytes: int | None, width: int, height: int, frames: int,
                context: int, guided: bool, family: str = "sd15") -> MemoryPlan:
    """Options chosen from free VRAM (None: not a GPU, no limits needed).

    The estimate: about 3.2 GB of fp16 weights for an SD1.5 UNet, motion module,
    VAE and text encoder, plus UNet activations that grow with the number of
    latent pixels per call (about 1 GB per 16 frames at 512x512 with guidance,
    with PyTorch's fused attention), plus about 1.5 GB per 8 frames decoded
    at 512x512 by the VAE. These are estimates from the architectures' sizes, not
    yet checked against a GPU's peak memory (bench/gpu_generate.py reports it).
    family "sdxl": about 7.5 GB of weights (5.6 GB resident with offload); the
    per-pixel terms are kept (SDXL has no attention at its highest resolution,
    which roughly offsets its wider layers) -- also not yet measured.
    """
    if family not in _WEIGHTS_GIB:
        raise BadArgument(f"family must be one of {', '.join(_WEIGHTS_GIB)}, got {family!r}")
    all_weights, resident = _WEIGHTS_GIB[family]
    n_windows = len(context_windows(frames, context, default_stride(context), 0))
    if free_bytes is None:     # CPU: all windows of a step in one UNet call
        return MemoryPlan(window_batch=n_windows)
    plan = MemoryPlan()
    weights = all_weights * GiB
    per_window = 1.0 * GiB * (width * height / (512 * 512)) * (context / 16) * (2 if guided else 1)
    per_decoded = 1.5 * GiB / 8 * (width * height / (512 * 512))
    budget = free_bytes * 0.85 - weights
    if budget < per_window + per_decoded * 2:
        plan.cpu_offload = True
        budget = free_bytes * 0.85 - resident * GiB    # only the UNet + motion module resident
    plan.window_batch = int(max(1, min(n_windows, budget * 0.6 // per_window)))
    # A few frames per VAE call already fill a GPU; more only raise the peak
    # (16 frames at 512x512 in one call: about 10 GB).
    chunk = int(max(1, min(DECODE_CHUNK_MAX, (budget * 0.4) // per_decoded)))
    plan.decode_chunk = chunk
    if chunk < 2:
        plan.vae_tiling = True
    if budget < per_window:
        plan.attention_slicing = True
    return plan


def apply_plan(pipe, plan: MemoryPlan, device) -> None:
    if plan.vae_tiling:
        pipe.vae.enable_tiling()
    if plan.attention_slicing:
        pipe.enable_attention_slicing()
    if plan.cpu_offload:
        pipe.enable_model_cpu_offload(device=device)


def offloaded(pipe) -> bool:
    """True when accelerate's offload hooks move the models (then .to() must not)."""
    return any(hasattr(m, "_hf_hook") for m in pipe.components.values())
