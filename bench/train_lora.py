"""Training speed and GPU memory of the two LoRA trainers, with full-size random-weight models.

The SD1.5 UNet, VAE and CLIP ViT-L/14 text encoder and the MotionAdapter v1-5-3 are
built from their published configs (bench/gpu_generate.py; nothing downloaded) with
random weights: a training step costs the same as with trained weights. Each case runs
lofid's own trainer through `lofid.training.common.train` (the accelerate loop, AdamW,
mixed precision) on pictures and clips made in memory:

  style LoRA   512x512, batch 4, rank 32, UNet attention (the defaults of style.toml)
  motion LoRA  16 frames of 384x384, batch 1, temporal + spatial LoRA (motion.toml)

and reports optimizer steps per second (median over the timed steps, after warm-up)
and the peak GPU memory (models, optimizer and activations). The seed's aim: training
fits a 24 GB card.

Run: python bench/train_lora.py --json bench/train_lora.json   (one CUDA GPU)
     python bench/train_lora.py --tiny                           (CPU, tiny models: checks
                                                                  that it runs; timings mean nothing)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gpu_generate import FULL, SCHEDULER, TINY, write_tokenizer  # noqa: E402

TARGET_GB = 24.0


def build_parts(configs: dict, device, with_motion: bool):
    """(unet, vae, text_encoder, tokenizer, scheduler config, motion adapter or None)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(
            write_tokenizer(Path(tmp) / "tokenizer", configs["text"]["vocab_size"]))
    with torch.device(device):      # initialising a billion parameters on a CPU takes long
        unet = UNet2DConditionModel(**configs["unet"])
        vae = AutoencoderKL(**configs["vae"])
        text = CLIPTextModel(CLIPTextConfig(**configs["text"]))
        adapter = MotionAdapter(**configs["motion"]) if with_motion else None
    return unet, vae, text, tokenizer, DDPMScheduler.from_config(SCHEDULER), adapter


def style_case(configs, device, size, batch, steps, warmup, tmp: Path) -> dict:
    import torch

    from lofid.training import common, style

    cfg = common.load_config(style.SCHEMA, None, {
        "model": "-", "data": "-", "output": "-", "resolution": size, "batch_size": batch,
        "steps": steps, "warmup_steps": 0, "checkpoint_every": 0, "validation_every": 0,
        "validation_prompts": []})
    gen = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, size, size, generator=gen) * 2 - 1,
               f"lofivision, cozy room, night, lofi, anime style, picture {i}") for i in range(2 * batch)]

    def build(ctx):
        unet, vae, text, tok, sched, _ = build_parts(configs, ctx.device, with_motion=False)
        parts = common.SD15(unet=unet, vae=vae, text_encoder=text, tokenizer=tok,
                            noise_scheduler=sched, name="sd15-random")
        return style.StyleTask(ctx, cfg, images, parts=parts)

    return _time("style LoRA", f"{size}x{size}", f"batch {batch}, rank {cfg['rank']}", cfg, build,
                 warmup, tmp / "style.safetensors", device)


def motion_case(configs, device, size, frames, steps, warmup, tmp: Path) -> dict | None:
    """The motion trainer's case, through its in-memory entry points (None when this
    tree's motion trainer has none yet)."""
    import torch

    try:
        from lofid.training import motion
        make_config, build_motion, task_class = motion.make_config, motion.build_parts, motion.MotionTask
    except (ImportError, AttributeError):
        return None

    cfg = make_config(resolution=size, frames=frames, stride=1, steps=steps, warmup_steps=0,
                      checkpoint_every=0, validation_every=0, validation_prompts=[])
    gen = torch.Generator().manual_seed(0)
    clips = [(torch.rand(frames, 3, size, size, generator=gen) * 2 - 1,
              "lofivision, rain on the window, night") for _ in range(2)]

    def build(ctx):
        unet, vae, text, tok, sched, adapter = build_parts(configs, ctx.device, with_motion=True)
        parts = build_motion(unet, adapter, vae, text, tok, sched.config, name="sd15-random")
        return task_class(ctx, cfg, clips, parts=parts)

    detail = f"{frames} frames, batch {cfg['batch_size']}, rank {cfg['temporal_rank']}"
    if cfg.get("spatial"):
        detail += f" + spatial {cfg['spatial_rank']}"
    if cfg.get("gradient_checkpointing"):
        detail += ", grad ckpt"
    return _time("motion LoRA", f"{size}x{size}", detail, cfg, build, warmup,
                 tmp / "motion.safetensors", device)


def _time(case, size, detail, cfg, build, warmup, output: Path, device) -> dict:
    import torch

    from lofid.training import common

    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    precision = {}

    def build_and_note(ctx):
        precision["dtype"] = str(ctx.weight_dtype).replace("torch.", "")
        return build(ctx)

    result = common.train(cfg, build_and_note, output=output,
                          train_dir=common.train_dir_for(output), progress=False)
    timed = result.step_seconds[warmup:] or result.step_seconds
    secs = statistics.median(timed)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    if cuda:
        torch.cuda.empty_cache()
    return {"case": case, "size": size, "detail": detail, "steps": len(timed),
            "precision": precision.get("dtype", "?"), "seconds_per_step": secs,
            "steps_per_s": 1.0 / secs, "peak_gib": peak, "final_loss": result.losses[-1]}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true",
                    help="tiny models on the CPU at 64 px, a few steps: checks that it runs")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per case (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--only", choices=("style", "motion"), help="run one case")
    args = ap.parse_args(argv)

    import torch

    if args.tiny:
        device, configs, warmup, steps = "cpu", TINY, 1, 2
        style_size, motion_size, frames, batch = 64, 64, 8, 2
        card = "CPU, tiny models (not a measurement)"
    else:
        if not torch.cuda.is_available():
            raise SystemExit("train_lora: no CUDA GPU here; use --tiny to check the script")
        device, configs, warmup, steps = "cuda", FULL, args.warmup, args.steps
        style_size, motion_size, frames, batch = 512, 384, 16, 4
        card = torch.cuda.get_device_name(0)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only in (None, "style"):
            rows.append(style_case(configs, device, style_size, batch, warmup + steps, warmup, tmp))
        if args.only in (None, "motion"):
            row = motion_case(configs, device, motion_size, frames, warmup + steps, warmup, tmp)
            if row is not None:
                rows.append(row)
            else:
                print("motion LoRA: not measured (lofid.training.motion has no MotionTask yet)")

    print(f"LoRA training, SD1.5 + MotionAdapter v1-5-3 random weights; {card}; "
          f"torch {torch.__version__}; median of {steps} steps after {warmup} warm-up")
    print(f"{'case':<12} {'size':>9}  {'setup':<48} {'dtype':>8} {'s/step':>7} {'steps/s':>7} "
          f"{'peak GiB':>8}  fits {TARGET_GB:g} GB")
    for r in rows:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        fits = "-" if r["peak_gib"] is None else ("yes" if r["peak_gib"] <= TARGET_GB else "NO")
        print(f"{r['case']:<12} {r['size']:>9}  {r['detail']:<48} {r['precision']:>8} "
              f"{r['seconds_per_step']:>7.3f} {r['steps_per_s']:>7.2f} {peak:>8}  {fits}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "card": card, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "warmup": warmup, "timed_steps": steps, "rows": rows}, indent=1), encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
