"""`lofid train motion`: a motion LoRA from short clips, MotionDirector style.

What is trained, on diffusers' UNetMotionModel (the SD1.5 UNet plus the motion adapter,
as `lofid generate` assembles them):

- a temporal LoRA on the motion modules' attention (to_q, to_k, to_v, to_out.0 inside
  motion_modules): the motion LoRA. It is saved in the AnimateDiff repository's key
  format (…motion_modules.N.temporal_transformer.transformer_blocks.0.attention_blocks.M
  .processor.to_q_lora.down.weight), which `lofid generate --motion-lora FILE[:WEIGHT]`
  and ComfyUI-AnimateDiff-Evolved load. That format has no alpha: alpha/rank is folded
  into the up weights.
- optionally a spatial LoRA on the UNet's own attention, trained on single frames of the
  clips. Every step has two passes: a spatial pass on one random frame per clip (the
  temporal LoRA switched off), and a temporal pass on `frames` frames with the spatial
  LoRA on but frozen. The spatial LoRA so takes up what the clips look like, and the
  temporal LoRA is left with how they move. The temporal loss can add the
  appearance-debiased term (predictions and targets minus those of a random anchor
  frame: what all frames share cancels out). The spatial LoRA can be written on its own
  (`output_spatial`, kohya keys); it is a by-product, usually not used for generating.

Data: a folder made by `lofid prepare clips`: DST/manifest.json, a JSON list of
{"file", "caption", "frames", "fps", "width", "height", ...} (file relative to DST), and
the clips it names (any container PyAV reads). Each clip is decoded and VAE-encoded once
at the start (scaled to cover `resolution`, centre-cropped square); each sample is then
`frames` frames `stride` apart from a random start in a clip.

Only the standard library is imported at module level: torch, diffusers, PyAV and
Pillow are imported by the functions that use them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lofid.training import common
from lofid.training.common import Option

# LoRA places, as module names of diffusers' UNetMotionModel.
TEMPORAL_PATTERN = r".*motion_modules\.\d+\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"
SPATIAL_PATTERN = (r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.\d+"
                   r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)")
# peft matches rank/alpha patterns against the end of a module name; motion-module
# names never hold "attentions.", so this picks the spatial layers only.
SPATIAL_SUFFIX = r"attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"
ADAPTER = "default"

VALIDATION_PROMPTS = [
    "lofivision, lofi style, close up window, rain drops on glass, blurred city lights outside, "
    "warm interior glow, night time, anime style",
]

SCHEMA = [
    Option("model", str, "dreamshaper-8",
           "the SD1.5 base model: a diffusers folder, a single-file checkpoint or a model name"),
    Option("motion_adapter", str, "animatediff-v1-5-3",
           "the AnimateDiff motion adapter the LoRA is for: a folder, a file or a model name"),
    Option("data", str, None, "folder made by `lofid prepare clips` (manifest.json and the clips)"),
    Option("output", str, None, "the motion LoRA file to write (FILE.safetensors); checkpoints "
           "and losses go to FILE.training/"),
    Option("output_spatial", str, "", "also write the spatial LoRA (kohya keys) to this "
           "FILE.safetensors (empty: not written)"),
    Option("resolution", int, 384, "training size in pixels (square; a multiple of 8)",
           minimum=64, maximum=1024),
    Option("frames", int, 16, "frames per sample (AnimateDiff's window is 16)", minimum=2, maximum=64),
    Option("stride", int, 1, "take every Nth frame of a clip (2: the motion learned is twice as fast)",
           minimum=1, maximum=16),
    Option("temporal_rank", int, 32, "rank of the temporal (motion) LoRA", minimum=1, maximum=512),
    Option("temporal_alpha", float, 32.0, "alpha of the temporal LoRA: its update is scaled by "
           "alpha/rank", minimum=0.0, maximum=4096.0),
    Option("temporal_lr", float, 5e-4, "learning rate of the temporal LoRA", minimum=0.0, maximum=1.0),
    Option("spatial", bool, True, "also train a spatial LoRA on single frames, so that what the "
           "clips look like does not go into the motion LoRA"),
    Option("spatial_rank", int, 32, "rank of the spatial LoRA", minimum=1, maximum=512),
    Option("spatial_alpha", float, 32.0, "alpha of the spatial LoRA", minimum=0.0, maximum=4096.0),
    Option("spatial_lr", float, 5e-4, "learning rate of the spatial LoRA", minimum=0.0, maximum=1.0),
    Option("appearance_debias", float, 1.0, "weight of the appearance-debiased temporal loss "
           "(0: plain loss only)", minimum=0.0, maximum=10.0),
    Option("gradient_checkpointing", bool, True, "recompute activations in the backward pass: "
           "about 40% less memory, about 15% slower"),
] + common.output_options(
    VALIDATION_PROMPTS, "clips",
    "prompts rendered as short clips with the motion LoRA every validation_every steps "
    "(one row of frames each)", "number format of the saved LoRA files",
) + common.loop_options(steps=500, batch_size=1, grad_accum=1, lr_schedule="constant",
                        warmup_steps=0, checkpoint_every=100, validation_every=0)


# --- the command -----------------------------------------------------------------------------

def add_arguments(parser) -> None:
    common.add_arguments(parser, SCHEMA, "training/configs/motion.toml")


@dataclass(frozen=True)
class Checked:
    """What `check` found, before any model is loaded."""
    cfg: dict
    output: Path
    spatial_output: Path | None
    train_dir: Path
    checkpoint: Path | None
    clips: list
    model: Any          # ModelRef of the checkpoint
    adapter: Any        # ModelRef of the motion adapter


def check(args) -> Checked:
    """Everything about the input that can be checked without loading a model."""
    cfg = common.load_config(SCHEMA, args.config, common.overrides_from_args(args, SCHEMA))
    if cfg["resolution"] % 8:
        raise common._bad(f"resolution = {cfg['resolution']} is not a multiple of 8: expected "
                          "e.g. 384 or 512 (the VAE works in blocks of 8 pixels)")
    output = common.check_output(cfg["output"])
    spatial_output = None
    if cfg["output_spatial"]:
        if not cfg["spatial"]:
            raise common._bad(f"output_spatial = {cfg['output_spatial']!r} but spatial = false: "
                              "expected spatial = true to have a spatial LoRA to write")
        spatial_output = common.check_output(cfg["output_spatial"], what="--output-spatial")
        if spatial_output.resolve() == output.resolve():
            raise common._bad(f"--output-spatial {cfg['output_spatial']!r} is the --output file: "
                              "expected another file for the spatial LoRA")
    common.check_data_dir(cfg["data"], need="manifest.json")
    clips = read_manifest(Path(cfg["data"]).expanduser())
    check_clip_lengths(clips, cfg["frames"], cfg["stride"])
    model, adapter = find_models(cfg["model"], cfg["motion_adapter"], cfg["frames"])
    train_dir, checkpoint = common.start_or_resume(cfg, output, args.resume)
    return Checked(cfg, output, spatial_output, train_dir, checkpoint, clips, model, adapter)


def run(args) -> int:
    c = check(args)
    cfg = c.cfg
    tasks = []

    def build(ctx):
        tasks.append(MotionTask(ctx, cfg, c.clips, model=c.model, adapter=c.adapter))
        return tasks[-1]

    result = common.train(cfg, build, output=c.output, train_dir=c.train_dir, resume=c.checkpoint)
    if tasks and not tasks[0].ctx.is_main_process:
        return common.EXIT_INTERRUPTED if result.interrupted else 0    # the main process reports
    if result.interrupted:
        print(f"interrupted at step {result.step}; checkpoint {result.checkpoint}\n"
              f"go on with: --resume latest (same --output)")
        return common.EXIT_INTERRUPTED
    last = result.losses[-10:]
    loss = f"{sum(last) / len(last):.4f}" if last else "-"
    print(f"wrote {c.output} (motion LoRA, rank {cfg['temporal_rank']}, {result.step} steps, "
          f"{len(c.clips)} clips, loss {loss}); use it with --motion-lora {c.output}:0.8")
    if c.spatial_output and tasks:
        tasks[0].save_spatial_lora(c.spatial_output, result.step)
        print(f"wrote {c.spatial_output} (spatial LoRA, kohya format, rank {cfg['spatial_rank']})")
    print(f"run folder {c.train_dir}: losses.jsonl, checkpoints/")
    return 0


# --- the clips -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clip:
    path: Path
    caption: str
    frames: int


def read_manifest(data) -> list[Clip]:
    """The clips listed in DATA/manifest.json (reads the manifest only, no video)."""
    data = Path(data)
    manifest = data / "manifest.json"
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise common._bad(f"{manifest}: not readable JSON ({e}): expected the manifest "
                          "`lofid prepare clips` writes") from None
    entries = doc.get("clips") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise common._bad(f"{manifest}: holds a {type(doc).__name__}, not a list of clips: expected "
                          "[{\"file\": ..., \"caption\": ..., \"frames\": ...}, ...]")
    clips = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise common._bad(f"{manifest}: entry {i} is {entry!r}: expected an object with a "
                              "\"file\" name")
        path = data / entry["file"]
        if not path.is_file():
            raise common._bad(f"{manifest}: entry {i} names {entry['file']!r}, which is not in "
                              f"{str(data)!r}: expected every listed clip beside the manifest")
        frames = entry.get("frames")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise common._bad(f"{manifest}: entry {i} ({entry['file']}) has frames = {frames!r}: "
                              "expected a whole number >= 1")
        caption = entry.get("caption")
        if caption is None:     # the caption file beside the clip, as for images
            beside = path.with_suffix(".txt")
            caption = beside.read_text(encoding="utf-8") if beside.is_file() else ""
        if not isinstance(caption, str):
            raise common._bad(f"{manifest}: entry {i} ({entry['file']}) has caption {caption!r}: "
                              "expected text")
        clips.append(Clip(path=path, caption=caption.strip(), frames=frames))
    if not clips:
        raise common._bad(f"{manifest}: lists no clips: expected at least one (did `lofid prepare "
                          "clips` keep any? its report.json says why not)")
    return clips


def frames_spanned(frames: int, stride: int) -> int:
    """Clip frames one sample spans: `frames` frames `stride` apart."""
    return (frames - 1) * stride + 1


def check_clip_lengths(clips: list[Clip], frames: int, stride: int) -> None:
    """BadInput naming the shortest clip when any clip is too short for a sample."""
    need = frames_spanned(frames, stride)
    short = [c for c in clips if c.frames < need]
    if short:
        worst = min(short, key=lambda c: c.frames)
        raise common._bad(f"{len(short)} of {len(clips)} clips are too short: {worst.path.name} has "
                          f"{worst.frames} frames, and frames = {frames} with stride = {stride} "
                          f"spans {need}: expected fewer frames, a smaller stride or longer clips")


def decode_clip(path, resolution: int):
    """Every frame of a clip as a float tensor (T, 3, resolution, resolution) in [-1, 1]:
    scaled so the short side fits, then centre-cropped."""
    import av
    import numpy as np
    import torch
    from PIL import Image

    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                image = frame.to_image()
                scale = resolution / min(image.size)
                w = max(resolution, round(image.width * scale))
                h = max(resolution, round(image.height * scale))
                image = image.resize((w, h), Image.Resampling.BICUBIC)
                left, top = (w - resolution) // 2, (h - resolution) // 2
                image = image.crop((left, top, left + resolution, top + resolution)).convert("RGB")
                frames.append(np.asarray(image))
    except (av.error.FFmpegError, OSError) as e:
        raise common._bad(f"{path}: cannot be decoded as video ({e}): expected a clip PyAV reads") from None
    if not frames:
        raise common._bad(f"{path}: holds no video frames: expected a clip")
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    return pixels / 127.5 - 1.0


# --- the models ------------------------------------------------------------------------------

def find_models(model: str, motion_adapter: str, frames: int):
    """(checkpoint ModelRef, motion adapter ModelRef) by path or name, checked from configs
    and file headers only: an SD1.5 checkpoint, a motion adapter of the same channels
    whose position table holds `frames` frames."""
    from lofid import models

    try:
        ref = models.find("checkpoint", model)
    except models.ModelError as e:
        raise common._bad(f"--model: {e}") from None
    ref = common.check_model(str(ref.path))
    try:
        mref = models.find("motion_adapter", motion_adapter)
    except models.ModelError as e:
        raise common._bad(f"--motion-adapter: {e}") from None
    path = Path(mref.path)
    if path.is_dir():
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        channels = tuple(cfg.get("block_out_channels", ()))
        window = cfg.get("motion_max_seq_length")
    else:
        header = models.read_header(path)
        channels = models.motion_channels(header)
        window = next((shape[1] for k, shape in header.items() if k.endswith("pos_encoder.pe")), None)
    unet_channels = models._unet_channels(ref)
    if channels and unet_channels and channels != unet_channels:
        raise common._bad(f"--motion-adapter {motion_adapter!r} has channels {channels}, the checkpoint "
                          f"{model!r} {unet_channels}: expected an SD1.5 motion adapter (such as "
                          "animatediff-v1-5-3) for an SD1.5 checkpoint")
    if window is not None and frames > int(window):
        raise common._bad(f"frames = {frames} is more than the motion adapter's {window}-frame "
                          f"position table: expected frames <= {window}")
    return ref, mref


@dataclass
class MotionParts:
    """The models a motion LoRA is trained on."""
    unet: Any                   # diffusers UNetMotionModel (SD1.5 UNet + motion adapter)
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any        # DDPMScheduler
    name: str
    adapter_name: str


def load_parts(model_ref, adapter_ref) -> MotionParts:
    """Load the checkpoint and the motion adapter and join them as lofid generate does."""
    from diffusers import UNetMotionModel

    from lofid import models

    sd = common.load_sd15(str(model_ref.path))
    try:
        adapter = models.load_motion_adapter(adapter_ref)
    except models.ModelError as e:
        raise common._bad(f"--motion-adapter: {e}") from None
    unet = UNetMotionModel.from_unet2d(sd.unet, adapter)
    return MotionParts(unet=unet, vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                       noise_scheduler=noise_scheduler_for(sd.noise_scheduler.config),
                       name=sd.name, adapter_name=adapter_ref.name)


def noise_scheduler_for(scheduler_config):
    """The training noise schedule (DDPM) for a scheduler config, with the linear betas
    AnimateDiff's motion modules were trained with."""
    from diffusers import DDPMScheduler

    config = {k: v for k, v in dict(scheduler_config).items() if not k.startswith("_")}
    config["beta_schedule"] = "linear"
    return DDPMScheduler.from_config(config)


def lora_targets(unet, spatial: bool) -> tuple[list[str], list[str]]:
    """(temporal, spatial) attention projections of a UNetMotionModel that get a LoRA."""
    import re

    temporal_re, spatial_re = re.compile(TEMPORAL_PATTERN), re.compile(SPATIAL_PATTERN)
    temporal, space = [], []
    for name, _ in unet.named_modules():
        if temporal_re.fullmatch(name):
            temporal.append(name)
        elif spatial and spatial_re.fullmatch(name):
            space.append(name)
    return temporal, space


def add_loras(unet, *, temporal_rank: int, temporal_alpha: float, spatial_rank: int = 0,
              spatial_alpha: float = 0.0) -> None:
    """One peft adapter: the temporal LoRA and, with spatial_rank > 0, the spatial one,
    each with its own rank and alpha. Everything else is frozen."""
    from peft import LoraConfig

    temporal, space = lora_targets(unet, spatial=spatial_rank > 0)
    if not temporal:
        raise ValueError("the UNet has no motion-module attention: expected a UNetMotionModel "
                         "(an SD1.5 checkpoint joined with a motion adapter)")
    unet.requires_grad_(False)
    config = LoraConfig(r=temporal_rank, lora_alpha=temporal_alpha, init_lora_weights=True,
                        target_modules=temporal + space,
                        rank_pattern={SPATIAL_SUFFIX: spatial_rank} if space else {},
                        alpha_pattern={SPATIAL_SUFFIX: spatial_alpha} if space else {})
    unet.add_adapter(config, adapter_name=ADAPTER)


def lora_params(unet, part: str) -> list:
    """The LoRA weights of one part, "temporal" or "spatial"."""
    motion = part == "temporal"
    return [p for n, p in unet.named_parameters() if ".lora_" in n and ("motion_modules" in n) == motion]


def lora_layers(unet, part: str) -> list:
    motion = part == "temporal"
    return [m for n, m in unet.named_modules()
            if ADAPTER in (getattr(m, "lora_A", None) or {}) and ("motion_modules" in n) == motion]


def set_part_scale(unet, part: str, on: bool) -> None:
    """Switch one part's LoRA on (alpha/rank) or off (0) in the forward pass."""
    set_scale(lora_layers(unet, part), on)


def set_scale(layers, on: bool) -> None:
    for layer in layers:
        layer.scaling[ADAPTER] = layer.lora_alpha[ADAPTER] / layer.r[ADAPTER] if on else 0.0


# --- the loss --------------------------------------------------------------------------------

def diffusion_loss(unet, noise_scheduler, latents, text, *, debias: float = 0.0, generator=None):
    """The noise-prediction loss of clip latents (B, C, F, h, w) with caption embeddings
    (B, tokens, dim), plus `debias` times the appearance-debiased loss when F > 1.

    Noise, timesteps and the debiasing anchor frame come from `generator` (CPU).
    """
    import torch
    import torch.nn.functional as F

    b, _, n_frames = latents.shape[:3]
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    steps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (b,), generator=generator)
    steps = steps.to(latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, steps)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, steps)
    else:
        target = noise
    # The motion UNet runs its spatial layers frame by frame: one caption per frame.
    text = text.repeat_interleave(n_frames, dim=0)
    pred = unet(noisy, steps, encoder_hidden_states=text, return_dict=False)[0].float()
    target = target.float()
    loss = F.mse_loss(pred, target)
    if debias > 0 and n_frames > 1:
        # MotionDirector's appearance-debiased loss (beta = 1): subtracting an anchor
        # frame removes what every frame shares, leaving the change between frames.
        anchor = int(torch.randint(0, n_frames, (1,), generator=generator))
        alpha = math.sqrt(2.0)
        pred_d = alpha * pred - pred[:, :, anchor:anchor + 1]
        target_d = alpha * target - target[:, :, anchor:anchor + 1]
        loss = loss + debias * F.mse_loss(pred_d, target_d)
    return loss


# --- the task --------------------------------------------------------------------------------

def _detached_output(linear, inputs, output):
    """Forward hook: the layer's output computed from its weights detached."""
    import torch.nn.functional as F

    bias = None if linear.bias is None else linear.bias.detach()
    return F.linear(inputs[0], linear.weight.detach(), bias)


class MotionTask(common.Task):
    """MotionDirector-style training of a temporal (and a spatial) LoRA on a UNetMotionModel.

    Models are loaded from `model`/`adapter` (ModelRefs) unless `parts` are given: the
    benchmark passes full-size models built in memory. `clips` are Clip entries of a
    manifest, or (tensor (T, 3, H, W) in [-1, 1], caption) pairs already in memory.
    """

    def __init__(self, ctx: common.Context, cfg: dict, clips, *, model=None, adapter=None,
                 parts: MotionParts | None = None):
        import torch

        self.ctx, self.cfg = ctx, cfg
        self.parts = parts or load_parts(model, adapter)
        self.unet = self.parts.unet
        self.noise = self.parts.noise_scheduler
        self.spatial = cfg["spatial"]
        for module in (self.unet, self.parts.vae, self.parts.text_encoder):
            module.requires_grad_(False)
        add_loras(self.unet, temporal_rank=cfg["temporal_rank"], temporal_alpha=cfg["temporal_alpha"],
                  spatial_rank=cfg["spatial_rank"] if self.spatial else 0,
                  spatial_alpha=cfg["spatial_alpha"])
        if cfg["gradient_checkpointing"]:
            self.unet.enable_gradient_checkpointing()
        # Layers that checkpoint; the spatial pass switches them off (see loss).
        self._checkpointing = [m for m in self.unet.modules() if hasattr(m, "gradient_checkpointing")]
        self._layers = {part: lora_layers(self.unet, part) for part in ("temporal", "spatial")}
        self._frozen = []
        for module in (self.unet, self.parts.vae, self.parts.text_encoder):
            module.to(ctx.device, dtype=ctx.weight_dtype)
        # The LoRA weights stay float32 under mixed precision: their updates are small.
        self.temporal_params = lora_params(self.unet, "temporal")
        self.spatial_params = lora_params(self.unet, "spatial")
        for p in self.temporal_params + self.spatial_params:
            p.data = p.data.float()
            p.requires_grad_(True)
        self.parts.vae.eval()
        self.parts.text_encoder.eval()
        with torch.no_grad():
            self.latents, self.captions = self._encode_clips(clips)
            self.text = self._encode_captions(sorted(set(self.captions)))
        self.span = frames_spanned(cfg["frames"], cfg["stride"])
        for latents, clip in zip(self.latents, clips):
            if latents.shape[1] < self.span:
                name = clip.path.name if isinstance(clip, Clip) else "a clip"
                raise common._bad(f"{name} decodes to {latents.shape[1]} frames; frames = {cfg['frames']} "
                                  f"with stride = {cfg['stride']} spans {self.span}: expected fewer "
                                  "frames, a smaller stride or longer clips")

    def _encode_clips(self, clips):
        """Each clip's VAE latents (C, T, h, w), float32 on the CPU, and its caption."""
        import torch

        vae, device, dtype = self.parts.vae, self.ctx.device, self.ctx.weight_dtype
        out, captions = [], []
        for clip in clips:
            if isinstance(clip, Clip):
                pixels, caption = decode_clip(clip.path, self.cfg["resolution"]), clip.caption
            else:
                pixels, caption = clip
            chunks = [vae.encode(chunk.to(device, dtype)).latent_dist.mean for chunk in pixels.split(8)]
            latents = torch.cat(chunks) * vae.config.scaling_factor
            out.append(latents.float().cpu().permute(1, 0, 2, 3).contiguous())
            captions.append(caption)
        return out, captions

    def _encode_captions(self, captions):
        tok = self.parts.tokenizer
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(self.ctx.device)
        hidden = self.parts.text_encoder(ids)[0].float().cpu()
        return {c: hidden[i] for i, c in enumerate(captions)}

    # --- what the loop asks for -----------------------------------------------------------

    def trainable_models(self) -> dict:
        return {"unet": self.unet}

    def param_groups(self) -> list[dict]:
        groups = [{"params": self.temporal_params, "lr": self.cfg["temporal_lr"]}]
        if self.spatial_params:
            groups.append({"params": self.spatial_params, "lr": self.cfg["spatial_lr"]})
        return groups

    def dataset_size(self) -> int:
        return len(self.latents)

    def load_batch(self, indices, generator):
        """Clip latents (B, C, frames, h, w), one frame of each for the spatial pass
        (B, C, 1, h, w), and caption embeddings (B, tokens, dim)."""
        import torch

        stride = self.cfg["stride"]
        samples, singles, texts = [], [], []
        for i in indices:
            latents = self.latents[i]
            start = int(torch.randint(0, latents.shape[1] - self.span + 1, (1,), generator=generator))
            samples.append(latents[:, start:start + self.span:stride])
            one = int(torch.randint(0, latents.shape[1], (1,), generator=generator))
            singles.append(latents[:, one:one + 1])
            texts.append(self.text[self.captions[i]])
        return torch.stack(samples), torch.stack(singles), torch.stack(texts)

    def loss(self, batch, models, generator):
        """Spatial pass (if any), then temporal pass; their sum.

        Spatial pass: the temporal LoRA off, so the one-frame loss trains the spatial LoRA
        alone. Temporal pass: both LoRAs on, the spatial one frozen (its layers compute
        with detached weights), so the clip loss trains the temporal LoRA alone. The
        settings of the temporal pass stay until the next call: the backward pass, and its
        recomputation under gradient checkpointing, must see what the forward pass saw.
        The spatial pass runs without checkpointing, so nothing of it is recomputed.
        """
        clips, singles, text = self._on_device(batch)
        total = self.spatial_loss((clips, singles, text), generator) if self.spatial else 0.0
        return total + diffusion_loss(models["unet"], self.noise, clips, text,
                                      debias=self.cfg["appearance_debias"], generator=generator)

    def spatial_loss(self, batch, generator):
        """The one-frame loss with the temporal LoRA off: it trains the spatial LoRA alone.
        Leaves the temporal pass's settings in place (spatial frozen, checkpointing as
        configured) for whatever runs next."""
        _, singles, text = self._on_device(batch)
        self._freeze_spatial(False)
        set_scale(self._layers["temporal"], on=False)
        self._set_checkpointing(False)
        # The unwrapped UNet: under data parallelism, one wrapped forward per backward.
        loss = diffusion_loss(self.unet, self.noise, singles, text, generator=generator)
        set_scale(self._layers["temporal"], on=True)
        self._set_checkpointing(self.cfg["gradient_checkpointing"])
        self._freeze_spatial(True)
        return loss

    def _on_device(self, batch):
        device, dtype = self.ctx.device, self.ctx.weight_dtype
        return tuple(t.to(device).to(dtype) for t in batch)

    def _set_checkpointing(self, on: bool) -> None:
        for module in self._checkpointing:
            module.gradient_checkpointing = on

    def _freeze_spatial(self, on: bool) -> None:
        """Spatial LoRA layers give the same output from detached weights (no gradient to
        them), or back to normal. Not requires_grad: that would also drop the gradient the
        spatial pass has already recorded."""
        for handle in self._frozen:
            handle.remove()
        self._frozen = []
        if on:
            for layer in self._layers["spatial"]:
                for linear in (layer.lora_A[ADAPTER], layer.lora_B[ADAPTER]):
                    self._frozen.append(linear.register_forward_hook(_detached_output))

    # --- files ------------------------------------------------------------------------------

    def save_lora(self, path: Path, step: int) -> None:
        """The motion LoRA (also written into every checkpoint)."""
        dtype = _save_dtype(self.cfg["save_precision"])
        save_motion_lora(self.unet, path, self._metadata(path, step), dtype)

    def save_spatial_lora(self, path: Path, step: int) -> None:
        dtype = _save_dtype(self.cfg["save_precision"])
        meta = {"ss_sd_model_name": self.parts.name, "ss_steps": step,
                "modelspec.title": Path(path).stem}
        save_spatial_lora(self.unet, path, self.cfg["spatial_rank"], self.cfg["spatial_alpha"], meta, dtype)

    def _metadata(self, path: Path, step: int) -> dict:
        cfg = self.cfg
        size = cfg["resolution"]
        return {
            "lofid.kind": "motion_lora",
            "lofid.base_model": self.parts.name,
            "lofid.motion_adapter": self.parts.adapter_name,
            "lofid.frames": cfg["frames"],
            "lofid.stride": cfg["stride"],
            "lofid.temporal_rank": cfg["temporal_rank"],
            "lofid.temporal_alpha": cfg["temporal_alpha"],
            "lofid.spatial": cfg["spatial"],
            "lofid.appearance_debias": cfg["appearance_debias"],
            "lofid.steps": step,
            "lofid.clips": len(self.latents),
            "lofid.captions": json.dumps(sorted(set(self.captions))[:50]),
            "modelspec.title": Path(path).stem,
            "modelspec.resolution": f"{size}x{size}",
        }

    def validate(self, step: int, folder: Path) -> Path | None:
        """Each validation prompt as a short clip with the motion LoRA (the spatial one
        off): one row of frames per prompt on a contact sheet."""

        import numpy as np
        import torch
        from diffusers import AnimateDiffPipeline, DDIMScheduler

        from lofid.export import contact_sheet, write_png

        prompts = self.cfg["validation_prompts"]
        if not prompts:
            return None
        pipe = AnimateDiffPipeline(
            vae=self.parts.vae, text_encoder=self.parts.text_encoder, tokenizer=self.parts.tokenizer,
            unet=self.unet, motion_adapter=None, feature_extractor=None, image_encoder=None,
            scheduler=DDIMScheduler.from_config(self.noise.config, clip_sample=False))
        pipe.set_progress_bar_config(disable=True)
        size = self.cfg["resolution"]
        was_training = self.unet.training
        self.unet.eval()
        # The motion alone, on a new prompt: the spatial LoRA (the clips' look) is off.
        set_scale(self._layers["spatial"], on=False)
        rows = []
        try:
            with common.autocast(self.ctx):
                for i, prompt in enumerate(prompts):
                    out = pipe(prompt, num_frames=self.cfg["frames"], height=size, width=size,
                               generator=torch.Generator().manual_seed(self.cfg["seed"] + i),
                               output_type="np", num_inference_steps=self.cfg["validation_steps"],
                               guidance_scale=self.cfg["guidance"]).frames[0]
                    rows.append(np.clip(np.asarray(out), 0, 1))
        finally:
            set_scale(self._layers["spatial"], on=True)
            self.unet.train(was_training)
        frames = (np.concatenate(rows) * 255).round().astype(np.uint8)
        sheet = contact_sheet(frames, columns=self.cfg["frames"])
        return write_png(sheet, folder / f"step-{step:06d}.png")


# --- LoRA files ------------------------------------------------------------------------------

def _save_dtype(name: str):
    import torch
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _lora_pairs(unet, part: str):
    """(module name, down weight, up weight with alpha/rank folded in) per LoRA layer."""
    import torch

    motion = part == "temporal"
    for name, module in unet.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is None or ADAPTER not in lora_a or ("motion_modules" in name) != motion:
            continue
        scale = module.lora_alpha[ADAPTER] / module.r[ADAPTER]
        down = lora_a[ADAPTER].weight.detach().to("cpu", torch.float32)
        up = module.lora_B[ADAPTER].weight.detach().to("cpu", torch.float32)
        yield name, down, up, scale


def original_motion_key(module: str, side: str) -> str:
    """A diffusers motion-module projection -> its key in the AnimateDiff motion-LoRA format:

    down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_out.0 ->
    down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0
    .attention_blocks.0.processor.to_out_lora.{side}.weight
    """
    import re

    name = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", module, count=1)
    name = name.replace(".attn1.", ".attention_blocks.0.").replace(".attn2.", ".attention_blocks.1.")
    if name.endswith(".to_out.0"):
        name = name[: -len(".0")]
    block, _, proj = name.rpartition(".")
    return f"{block}.processor.{proj}_lora.{side}.weight"


def motion_lora_state_dict(unet, dtype=None) -> dict:
    """The temporal LoRA in the AnimateDiff motion-LoRA key format (alpha/rank folded
    into the up weights: the format has no alpha)."""
    out = {}
    for name, down, up, scale in _lora_pairs(unet, "temporal"):
        out[original_motion_key(name, "down")] = down.to(dtype or down.dtype).contiguous()
        out[original_motion_key(name, "up")] = (up * scale).to(dtype or up.dtype).contiguous()
    return out


def spatial_lora_state_dict(unet, alpha: float, dtype=None) -> dict:
    """The spatial LoRA with kohya keys (lora_unet_<module with _ for .>.lora_down/.lora_up/.alpha)."""
    import torch

    out = {}
    for name, down, up, _ in _lora_pairs(unet, "spatial"):
        stem = "lora_unet_" + name.replace(".", "_")
        out[stem + ".lora_down.weight"] = down.to(dtype or down.dtype).contiguous()
        out[stem + ".lora_up.weight"] = up.to(dtype or up.dtype).contiguous()
        out[stem + ".alpha"] = torch.tensor(float(alpha))
    return out


def _write(sd: dict, path, metadata: dict) -> Path:
    import os

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(sd, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    os.replace(tmp, path)
    return path


def save_motion_lora(unet, path, metadata: dict | None = None, dtype=None) -> Path:
    return _write(motion_lora_state_dict(unet, dtype), path, metadata or {})


def save_spatial_lora(unet, path, rank: int, alpha: float, metadata: dict | None = None,
                      dtype=None) -> Path:
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
            "ss_network_alpha": str(alpha), "ss_base_model_version": "sd_v1"}
    meta.update(metadata or {})
    return _write(spatial_lora_state_dict(unet, alpha, dtype), path, meta)


# --- for code that trains without the command line (the benchmark) --------------------------

def make_config(**overrides) -> dict:
    """The default config with `overrides`, checked as the command line checks them."""
    return common.load_config(SCHEMA, None, {"data": "", "output": "", **overrides})


def build_parts(unet, motion_adapter, vae, text_encoder, tokenizer, scheduler_config,
                name: str = "in memory") -> MotionParts:
    """MotionParts from models already in memory: an SD1.5 UNet2DConditionModel and a
    MotionAdapter are joined into a UNetMotionModel, as for generating."""
    from diffusers import UNetMotionModel

    return MotionParts(unet=UNetMotionModel.from_unet2d(unet, motion_adapter), vae=vae,
                       text_encoder=text_encoder, tokenizer=tokenizer,
                       noise_scheduler=noise_scheduler_for(scheduler_config), name=name,
                       adapter_name=name)
