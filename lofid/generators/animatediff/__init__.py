"""AnimateDiff: loops from a checkpoint plus a motion adapter, denoised as a circle.

- options.py: what a user chooses (schedulers, loop methods, presets) and the shape
  of the loops `lofid run` asks for; no torch.
- windows.py: the circular context windows each denoising step runs the UNet on.
- memory.py: the memory plan that fits a job in the GPU memory at hand.
- pipeline.py: loading the weights and running a loop (generate, available).
"""

from __future__ import annotations

from .memory import DECODE_CHUNK_MAX, GiB, MemoryPlan, plan_memory
from .options import (DTYPES, GENERATOR, LOOP_METHODS, PRESETS, SCHEDULERS, loop_shape,
                      preset_options)
from .pipeline import (
    Conditioning, available, conditioning, decode, denoise_circular, encode, generate,
    initial_noise, is_sdxl, loaded_pipelines, make_scheduler, speed_up, unload)
from .windows import context_windows, default_stride, window_spacing

__all__ = ["Conditioning", "DECODE_CHUNK_MAX", "DTYPES", "GENERATOR", "GiB", "LOOP_METHODS",
           "MemoryPlan", "PRESETS", "SCHEDULERS", "available", "conditioning",
           "context_windows", "decode", "default_stride", "denoise_circular", "encode",
           "generate", "initial_noise", "is_sdxl", "loaded_pipelines", "loop_shape",
           "make_scheduler", "plan_memory", "preset_options", "speed_up", "unload",
           "window_spacing"]
