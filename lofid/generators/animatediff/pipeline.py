"""AnimateDiff loading and running: loops from a checkpoint plus a motion adapter of
one model family, SD1.5 (AnimateDiffPipeline) or SDXL (AnimateDiffSDXLPipeline).

generate() wraps diffusers' AnimateDiffPipeline but runs its own denoising loop,
which sees the clip as a circle: at every step the clip is cut into wrap-around
context windows (windows.py), the UNet predicts noise for each window, the
predictions are averaged per frame, and the scheduler steps the whole clip. The loop
point is denoised like any other frame step: the loop closes in latent space, with
no blend.

Steps, in order: check inputs, get the pipeline, set the scheduler, plan the memory
(memory.py), encode the prompt, prepare the noise, denoise on the circle, decode,
make the Loop. On CUDA out-of-memory it retries smaller, one change at a time.

The families differ only in their conditioning: SDXL's UNet also takes the pooled text
embedding of its second text encoder and the image-size "time ids" (added_cond_kwargs),
per clip rather than per frame. conditioning() builds, per family, the text embeddings
and a function giving the extra UNet arguments for a batch of windows, so the one
circular loop serves both.

torch and diffusers are imported inside the functions that need them: importing
this module stays cheap (`lofid --help` never loads torch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from lofid.errors import BadArgument
from lofid.loop import Loop, close_loop

from .memory import MIN_CONTEXT, apply_plan, offloaded, plan_memory
from .options import GENERATOR, SCHEDULERS, check_inputs, is_int
from .windows import context_windows, default_stride

log = logging.getLogger(__name__)


def make_scheduler(name: str, config):
    """The scheduler `name` built from a pipeline's scheduler config, with the
    settings AnimateDiff's motion weights expect: linear betas (what the motion
    modules were trained with) and no sample clipping."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, LCMScheduler

    if name == "ddim":
        return DDIMScheduler.from_config(config, beta_schedule="linear", clip_sample=False,
                                         steps_offset=1, timestep_spacing="linspace")
    if name == "euler":   # AnimateDiff-Lightning: trailing timesteps
        return EulerDiscreteScheduler.from_config(config, beta_schedule="linear",
                                                  timestep_spacing="trailing")
    if name == "lcm":     # AnimateLCM
        return LCMScheduler.from_config(config, beta_schedule="linear")
    raise BadArgument(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")


def speed_up(pipe, device, *, channels_last: bool | None = None, compile: bool = False) -> dict:
    """Faster kernels for the pipeline's UNet and VAE on a GPU, applied once per pipeline.

    Both are off by default. channels_last lays the convolutions' activations out
    the way cuDNN's NHWC kernels read them; measured on an H100 (bench/RESULTS.md)
    it made a 16-frame loop 13% slower with diffusers' motion UNet, whose temporal
    layers reshape the activations back and forth. compile wraps the UNet in
    torch.compile: the first loop at a new shape (frames per call, size) pays the
    compilation (over 100 s on an H100), so it is only for a daemon that makes loop
    after loop at one size, and not yet measured. Returns what is in effect.
    """
    import torch

    if channels_last is None:
        channels_last = False
    done = getattr(pipe, "_lofid_speed", {"channels_last": False, "compile": False})
    if channels_last and not done["channels_last"]:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        done["channels_last"] = True
    if compile and not done["compile"]:
        pipe.unet = torch.compile(pipe.unet, fullgraph=False, dynamic=False)
        done["compile"] = True
    pipe._lofid_speed = done
    return dict(done)


def _unet_device(pipe):
    return getattr(pipe, "_execution_device", None) or pipe.device


def denoise_circular(pipe, latents, cond, uncond, timesteps, guidance: float,
                     context: int, stride: int, window_batch: int = 1,
                     extra_step_kwargs: dict | None = None,
                     on_step: Callable[[int], None] | None = None,
                     unet_kwargs: Callable[[int], dict] | None = None):
    """Denoise `latents` (1, C, N, h, w) on a circle of N frames.

    At each step the noise is predicted per context window (with classifier-free
    guidance when `uncond` is given: one batch of uncond + cond) and averaged per
    frame over the windows that cover it; then the scheduler steps the whole clip.
    `unet_kwargs(n_windows)` gives the model family's extra UNet arguments for a
    batch of that many windows, in the same order (uncond windows first when
    guided); None for families that need none (SD1.5).
    """
    import torch

    scheduler = pipe.scheduler
    n = latents.shape[2]
    guided = uncond is not None
    extra_step_kwargs = extra_step_kwargs or {}
    for i, t in enumerate(timesteps):
        model_input = scheduler.scale_model_input(latents, t)
        total = torch.zeros_like(latents, dtype=torch.float32)
        count = torch.zeros(n, dtype=torch.float32, device=latents.device)
        windows = context_windows(n, context, stride, i)
        for b in range(0, len(windows), window_batch):
            group = windows[b:b + window_batch]
            idx = [torch.tensor(w, device=latents.device) for w in group]
            x = torch.cat([model_input.index_select(2, j) for j in idx])
            frames_per = len(group[0])
            emb = cond.repeat(len(group) * frames_per, 1, 1)
            if guided:
                x = torch.cat([x, x])
                emb = torch.cat([uncond.repeat(len(group) * frames_per, 1, 1), emb])
            extra = unet_kwargs(len(group)) if unet_kwargs is not None else {}
            pred = pipe.unet(x, t, encoder_hidden_states=emb, **extra).sample.float()
            if guided:
                pred_uncond, pred_cond = pred.chunk(2)
                pred = pred_uncond + guidance * (pred_cond - pred_uncond)
            for k, j in enumerate(idx):
                total.index_add_(2, j, pred[k:k + 1])
                count.index_add_(0, j, torch.ones(len(j), device=latents.device))
        noise = (total / count.view(1, 1, n, 1, 1)).to(latents.dtype)
        latents = scheduler.step(noise, t, latents, **extra_step_kwargs).prev_sample
        if on_step is not None:
            on_step(i + 1)
    return latents


def encode(pipe, prompt: str, negative: str, guided: bool, device):
    """(cond, uncond) text embeddings, each (1, 77, dim); uncond is None unguided."""
    c = conditioning(pipe, prompt, negative, guided, device)
    return c.cond, c.uncond


def is_sdxl(pipe) -> bool:
    """True for an SDXL-family pipeline: its UNet adds pooled text and time ids."""
    return getattr(pipe.unet.config, "addition_embed_type", None) == "text_time"


@dataclass
class Conditioning:
    """What the prompt gives the denoiser, for either model family."""
    cond: Any                      # (1, 77, dim) text embeddings
    uncond: Any                    # the negative prompt's, None unguided
    # extra UNet arguments for a batch of n windows (None: SD1.5 needs none)
    unet_kwargs: Callable[[int], dict] | None = None
    # extra pipeline __call__ arguments (the single-window path)
    call_kwargs: dict = field(default_factory=dict)


def conditioning(pipe, prompt: str, negative: str, guided: bool, device,
                 width: int | None = None, height: int | None = None) -> Conditioning:
    """The prompt's conditioning for `pipe`'s family.

    SDXL: encode_prompt also returns pooled embeddings of the second text encoder;
    with the time ids (original size, crop corner, target size: here the loop's
    size and no crop, as the pipeline does) they go to every UNet call as
    added_cond_kwargs, one row per window (the UNet repeats them per frame).
    """
    if not is_sdxl(pipe):
        cond, uncond = pipe.encode_prompt(prompt, device, 1, guided, negative)
        return Conditioning(cond, uncond if guided else None)

    import torch

    cond, uncond, pooled, uncond_pooled = pipe.encode_prompt(
        prompt=prompt, device=device, num_videos_per_prompt=1,
        do_classifier_free_guidance=guided, negative_prompt=negative)
    if width is None or height is None:
        side = pipe.default_sample_size * pipe.vae_scale_factor
        width, height = width or side, height or side
    proj = (pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None
            else int(pooled.shape[-1]))
    time_ids = pipe._get_add_time_ids((height, width), (0, 0), (height, width),
                                      dtype=cond.dtype, text_encoder_projection_dim=proj).to(device)
    pooled = pooled.to(device)
    uncond_pooled = uncond_pooled.to(device) if guided else None

    def unet_kwargs(n_windows: int) -> dict:
        text, ids = pooled.repeat(n_windows, 1), time_ids.repeat(n_windows, 1)
        if guided:
            text = torch.cat([uncond_pooled.repeat(n_windows, 1), text])
            ids = torch.cat([ids, ids])
        return {"added_cond_kwargs": {"text_embeds": text, "time_ids": ids}}

    call = {"pooled_prompt_embeds": pooled}
    if guided:
        call["negative_pooled_prompt_embeds"] = uncond_pooled
    return Conditioning(cond, uncond if guided else None, unet_kwargs, call)


def initial_noise(pipe, seed: int, frames: int, width: int, height: int, dtype, device):
    """The seeded starting noise, drawn on the CPU so the same seed gives the same
    loop on any device, scaled for the scheduler."""
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed))
    shape = (1, pipe.unet.config.in_channels, frames,
             height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype) * pipe.scheduler.init_noise_sigma


def decode(pipe, latents, chunk: int):
    """Latents (1, C, N, h, w) -> video (1, 3, N, H, W) in [-1, 1], `chunk` frames
    per VAE call. SD1.5's pipeline chunks by itself; SDXL's does not, and its VAE
    overflows in fp16 (force_upcast in its config), so it decodes in fp32 then."""
    import inspect

    import torch

    if "decode_chunk_size" in inspect.signature(pipe.decode_latents).parameters:
        return pipe.decode_latents(latents, chunk)
    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    if upcast:
        vae.to(torch.float32)
    try:
        z = latents / vae.config.scaling_factor
        b, c, n, h, w = z.shape
        z = z.permute(0, 2, 1, 3, 4).reshape(b * n, c, h, w).to(vae.dtype)
        images = torch.cat([vae.decode(z[i:i + chunk]).sample for i in range(0, b * n, chunk)])
        return images[None].reshape((b, n) + images.shape[1:]).permute(0, 2, 1, 3, 4).float()
    finally:
        if upcast:
            vae.to(torch.float16)


def _to_frames(video) -> np.ndarray:
    """(1, 3, N, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    import torch

    v = (video[0].permute(1, 2, 3, 0).float().clamp(-1, 1) + 1) * 127.5
    return v.round().to(torch.uint8).cpu().numpy()

_cache: dict = {}


def loaded_pipelines() -> list:
    """The pipelines kept loaded between loops (what holds the model's memory)."""
    return list(_cache.values())


def unload() -> None:
    """Drops the pipelines kept loaded, so the next loop loads its model afresh."""
    _cache.clear()


def _resolve_dtype(dtype: str | None, device_type: str):
    import torch

    if device_type != "cuda":
        return torch.float32       # CPU half precision is slow and lossy
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32,
            None: torch.float16}[dtype]


def _lora_list(items) -> list[tuple[str, float]]:
    out = []
    for item in items:
        if isinstance(item, str):
            from lofid.loras import parse_lora_arg
            out.append(parse_lora_arg(item))
        else:
            name, weight = item
            out.append((str(name), float(weight)))
    return out


def _load(model, motion_adapter, device, torch_dtype):
    """The pipeline for these weights; the last one is kept, so consecutive loops
    from the same weights do not reload them."""
    from lofid import models

    ref = models.find("checkpoint", model)
    mref = models.find("motion_adapter", motion_adapter)
    key = (str(ref.path), str(mref.path), str(device), str(torch_dtype))
    if key not in _cache:
        _cache.clear()
        _cache[key] = models.load_pipeline(ref, mref, device, torch_dtype)
    return _cache[key], ref, mref


def generate(spec, seed, size, frames, fps, progress=None, *, model=None, motion_adapter=None,
             loras=(), motion_loras=(), steps=25, guidance=7.5, scheduler="ddim",
             loop_method="circular", context=16, device=None, pipeline=None,
             stride=None, dtype=None, events=None, channels_last=None,
             compile=False) -> Loop:
    """One loop of `frames` frames at `size` = (width, height) for `spec`.

    `pipeline` is a ready AnimateDiffPipeline or AnimateDiffSDXLPipeline; without it `model` and
    `motion_adapter` (paths or names) are found and loaded through lofid.models.
    `progress(done, total)` is called after each denoising step; `events(name,
    info)` hears of memory fallbacks ("oom_retry"). `stride` spaces the context
    windows (default: half a window); `dtype` is "fp16" (CUDA default), "bf16"
    or "fp32" (always on CPU). `channels_last` and `compile` (torch.compile of the
    UNet) are the GPU speed options of speed_up(), both off by default.
    """
    import torch

    width, height = check_inputs(seed, size, frames, fps, steps, guidance, scheduler,
                                  loop_method, context, dtype)
    given_stride = stride
    stride = default_stride(context) if stride is None else stride
    if not is_int(stride) or stride < 1:
        raise BadArgument(f"stride must be an integer >= 1, got {stride!r}")
    style_loras, motion_lora_list = _lora_list(loras), _lora_list(motion_loras)

    if device is None and pipeline is not None:
        device = pipeline.device          # a ready pipeline stays where it is
    device = torch.device(device if device is not None else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    torch_dtype = _resolve_dtype(dtype, device.type)
    if pipeline is None:
        if model is None or motion_adapter is None:
            raise BadArgument("animatediff needs model and motion_adapter (paths or names) "
                             f"or a ready pipeline, got model={model!r}, "
                             f"motion_adapter={motion_adapter!r}")
        pipe, ref, mref = _load(model, motion_adapter, device, torch_dtype)
        model_ids = {"model": ref.name, "motion_adapter": mref.name}
    else:
        pipe = pipeline
        model_ids = {"model": model if model is not None else "given pipeline",
                     "motion_adapter": motion_adapter}
        torch_dtype = pipe.unet.dtype
    if style_loras or motion_lora_list or pipeline is None:
        # exactly these LoRAs: a kept pipeline drops the last loop's
        from lofid import loras as lora_mod, models

        lora_mod.apply_loras(pipe, [(models.find("lora", n), w) for n, w in style_loras],
                             [(models.find("motion_lora", n), w) for n, w in motion_lora_list])

    if width % pipe.vae_scale_factor or height % pipe.vae_scale_factor:
        raise BadArgument(f"size {width}x{height} must be a multiple of the VAE's "
                         f"{pipe.vae_scale_factor}")
    longest = int(getattr(pipe.unet.config, "motion_max_seq_length", 32) or 32)
    if context > longest:
        raise BadArgument(f"context must be at most the motion module's {longest} frames, "
                         f"got {context}")

    # A pixel crossfade eats `overlap` frames: make that many more so the loop
    # still has `frames` frames.
    overlap = max(2, frames // 4) if loop_method != "circular" else 0
    n_make = frames + overlap
    if loop_method == "none" and n_make > longest:
        raise BadArgument(f"loop_method 'none' makes all {n_make} frames in one window, more "
                         f"than the motion module's {longest}; use 'circular' for long loops")

    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    guided = guidance > 1.0
    free = None
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    plan = plan_memory(free, width, height, n_make, context, guided,
                       "sdxl" if is_sdxl(pipe) else "sd15")
    if device.type == "cuda":
        apply_plan(pipe, plan, device)
    if not plan.cpu_offload and not offloaded(pipe) and pipe.device != device:
        pipe.to(device)
    speed_up(pipe, device, channels_last=channels_last, compile=compile)

    fallbacks: list[str] = []

    def emit(name: str, info: dict) -> None:
        log.warning("animatediff: %s %s", name, info)
        if events is not None:
            events(name, info)

    use_context = min(context, n_make) if loop_method != "none" else n_make

    def _stride_for(window: int) -> int:
        return default_stride(window) if given_stride is None else min(given_stride, window)

    # On CUDA out-of-memory, retry smaller, one change at a time, cheapest first.
    while True:
        try:
            made = _run(pipe, spec, seed, width, height, n_make, steps, guidance, guided,
                        loop_method, use_context, _stride_for(use_context), plan, progress)
            break
        except torch.cuda.OutOfMemoryError as exc:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if device.type == "cuda" and not plan.cpu_offload:
                plan.cpu_offload = True
                pipe.enable_model_cpu_offload(device=device)
                step = "model cpu offload"
            elif plan.window_batch > 1:
                plan.window_batch = 1
                step = "one context window per UNet call"
            elif loop_method != "none" and use_context > MIN_CONTEXT:
                # shorter windows: less memory per UNet call, weaker motion
                use_context = max(MIN_CONTEXT, use_context // 2)
                step = f"context windows of {use_context} frames"
            elif plan.decode_chunk > 1:
                plan.decode_chunk = 1
                step = "VAE decode one frame at a time"
            else:
                raise
            fallbacks.append(step)
            emit("oom_retry", {"error": str(exc).splitlines()[0] if str(exc) else "out of memory",
                               "retry_with": step})
            if progress is not None:
                progress(0, steps)

    frames_out = close_loop(made, overlap) if loop_method != "circular" else made
    params = {
        "size": [width, height], "frames": frames, "steps": steps, "guidance": float(guidance),
        "scheduler": scheduler, "loop_method": loop_method, "context": use_context,
        "stride": _stride_for(use_context), "loras": [[n, w] for n, w in style_loras],
        "motion_loras": [[n, w] for n, w in motion_lora_list],
        "dtype": str(torch_dtype).replace("torch.", ""), "device": device.type,
        **model_ids,
    }
    if fallbacks:
        params["memory_fallbacks"] = fallbacks
    return Loop(frames=frames_out, fps=float(fps), spec=spec, seed=int(seed),
                generator=GENERATOR, params=params)


def _run(pipe, spec, seed, width, height, n_frames, steps, guidance, guided, loop_method,
         context, stride, plan, progress) -> np.ndarray:
    """Encode, denoise, decode: (n_frames, H, W, 3) uint8."""
    import torch

    device = _unet_device(pipe)
    report = (lambda done: progress(done, steps)) if progress is not None else None
    with torch.inference_mode():
        c = conditioning(pipe, spec.prompt(), spec.negative_prompt(), guided, device,
                         width, height)
        cond, uncond = c.cond, c.uncond
        pipe.scheduler.set_timesteps(steps, device=device)
        timesteps = pipe.scheduler.timesteps
        latents = initial_noise(pipe, seed, n_frames, width, height, cond.dtype, device)
        # the scheduler's own noise (LCM adds some between steps) is seeded too
        step_generator = torch.Generator("cpu").manual_seed(int(seed) + 1)
        if loop_method == "none":
            # the plain pipeline: every frame in one window, the clip not a circle
            latents = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond,
                           num_frames=n_frames, height=height, width=width,
                           num_inference_steps=steps, guidance_scale=guidance,
                           latents=latents / pipe.scheduler.init_noise_sigma,
                           generator=step_generator, output_type="latent",
                           callback_on_step_end=_step_callback(report),
                           **c.call_kwargs).frames
        else:
            extra = pipe.prepare_extra_step_kwargs(step_generator, 0.0)
            latents = denoise_circular(pipe, latents, cond, uncond, timesteps, guidance,
                                       context, stride, plan.window_batch, extra, report,
                                       c.unet_kwargs)
        video = decode(pipe, latents, plan.decode_chunk)
    return _to_frames(video)


def _step_callback(report):
    def on_step_end(pipe, i, t, tensors):
        if report is not None:
            report(i + 1)
        return tensors
    return on_step_end


def available() -> bool:
    """True when a checkpoint and a motion adapter are found and a CUDA GPU is present."""
    try:
        from lofid import models

        refs = models.list_models()
        kinds = {r.kind for r in refs}
        if not {"checkpoint", "motion_adapter"} <= kinds:
            return False
        import torch

        return bool(torch.cuda.is_available())
    except Exception:   # no torch, no models module, unreadable folders: not available
        return False
