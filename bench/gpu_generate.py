"""GPU time of the AnimateDiff generator with full-size SD1.5 architectures.

The SD1.5 UNet, the SD VAE, the CLIP ViT-L/14 text encoder and the MotionAdapter
v1-5-3 are built from their published configs (written below, nothing downloaded)
with random weights, in fp16 on CUDA: they time exactly as trained weights do. Each
job runs through lofid's own generate() (circular denoising, VAE decode included):

  16 frames 512x512, 25 steps, guidance 7.5           target <= 3 s on one H100
  24-frame circular loop, same settings + peak VRAM   target <= 5 s, <= 8 GB
  few-step: 16 frames, 4 steps, guidance 1 (euler)    target <= 0.6 s

Run: python bench/gpu_generate.py            (one CUDA GPU; prints one table)
     python bench/gpu_generate.py --tiny     (CPU, tiny models: checks that it runs,
                                              its timings mean nothing)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

# --------------------------------------------------------------------------- published configs

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False,
    flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1,
    mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5,
    cross_attention_dim=768, attention_head_dim=8,
)
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=512,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, act_fn="silu",
    norm_num_groups=32, scaling_factor=0.18215,
)
CLIP_VIT_L14_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    layer_norm_eps=1e-5, projection_dim=768, bos_token_id=0, pad_token_id=1, eos_token_id=2,
)
MOTION_ADAPTER_V153 = dict(
    block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
    motion_mid_block_layers_per_block=1, motion_num_attention_heads=8,
    motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=False,
)
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                 beta_schedule="linear", clip_sample=False, set_alpha_to_one=False,
                 steps_offset=1)

# Tiny stand-ins of the same shapes, for --tiny (CPU, seconds).
TINY = {
    "unet": dict(SD15_UNET, sample_size=8, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                 cross_attention_dim=32, attention_head_dim=2),
    "vae": dict(SD_VAE, block_out_channels=(32, 32, 64, 64), layers_per_block=1),
    "text": dict(CLIP_VIT_L14_TEXT, vocab_size=1000, hidden_size=32, intermediate_size=37,
                 num_hidden_layers=2, num_attention_heads=2, projection_dim=32),
    "motion": dict(MOTION_ADAPTER_V153, block_out_channels=(32, 64), motion_layers_per_block=1,
                   motion_num_attention_heads=2),
}
FULL = {"unet": SD15_UNET, "vae": SD_VAE, "text": CLIP_VIT_L14_TEXT,
        "motion": MOTION_ADAPTER_V153}

# (case, frames, steps, guidance, scheduler, context, target seconds)
JOBS = [
    ("16 frames, 25 steps, cfg 7.5", 16, 25, 7.5, "ddim", 16, 3.0),
    ("24-frame circular loop", 24, 25, 7.5, "ddim", 16, 5.0),
    ("24-frame loop, one 24-frame window", 24, 25, 7.5, "ddim", 24, 5.0),
    ("few-step 16 frames, 4 steps, cfg 1", 16, 4, 1.0, "euler", 16, 0.6),
]
# The GPU speed options of animatediff.speed_up, measured one after the other on one
# pipeline (each adds to the last): plain eager kernels (lofid's default),
# channels_last, and the UNet under torch.compile (compiling is not timed).
VARIANTS = {
    "eager": dict(channels_last=False),
    "channels_last": dict(channels_last=True),
    "compiled": dict(channels_last=True, compile=True),
}
PEAK_VRAM_TARGET_GB = 8.0


def write_tokenizer(folder: Path, vocab_size: int) -> Path:
    """A small CLIP byte-level BPE tokenizer (bytes and word ends, no merges): enough to
    turn a prompt into 77 token ids; the text encoder's cost does not depend on them."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    alphabet = [chr(b) if b in keep else chr(next(extra)) for b in range(256)]
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) <= vocab_size
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}),
                                       encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}), encoding="utf-8")
    return folder


def build_pipeline(configs: dict, device, dtype):
    """An AnimateDiffPipeline of random weights from the config dicts."""
    import torch
    from diffusers import (AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, MotionAdapter,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(
            write_tokenizer(Path(tmp) / "tokenizer", configs["text"]["vocab_size"]))
    # build on the target device: initialising 1.3 G parameters on a CPU takes long
    with torch.device(device):
        pipe = AnimateDiffPipeline(
            vae=AutoencoderKL(**configs["vae"]),
            text_encoder=CLIPTextModel(CLIPTextConfig(**configs["text"])),
            tokenizer=tokenizer,
            unet=UNet2DConditionModel(**configs["unet"]),
            motion_adapter=MotionAdapter(**configs["motion"]),
            scheduler=DDIMScheduler(**SCHEDULER),
        )
    pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true",
                    help="tiny models on the CPU at 32x32, 2 steps: checks that it runs")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per job (median)")
    ap.add_argument("--size", default="512x512", help="WIDTHxHEIGHT (default 512x512)")
    ap.add_argument("--variants", default="eager,channels_last",
                    help=f"comma-separated, in this order: {','.join(VARIANTS)} "
                         "(default eager,channels_last)")
    ap.add_argument("--compiled-jobs", type=int, default=1,
                    help="how many of the jobs (from the first) the compiled variant runs; "
                         "each new shape compiles anew (default 1)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variant_list if v not in VARIANTS]
    if unknown or not args.variant_list:
        ap.error(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    args.variant_list.sort(key=list(VARIANTS).index)

    import torch

    if args.tiny:
        device, dtype, configs, size, repeats = "cpu", torch.float32, TINY, (32, 32), 1
        card = "CPU, tiny models (not a measurement)"
        # tiny models are all per-op overhead: one thread never waits on the other
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _run(args, torch, device, dtype, configs, size, repeats, card)
        finally:
            torch.set_num_threads(threads)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_generate: no CUDA GPU here; use --tiny to check the script")
        device, dtype, configs, repeats = "cuda", torch.float16, FULL, args.repeats
        size = tuple(int(v) for v in args.size.lower().split("x"))
        card = torch.cuda.get_device_name(0)
    return _run(args, torch, device, dtype, configs, size, repeats, card)


def _run(args, torch, device, dtype, configs, size, repeats, card) -> list[dict]:
    from lofid.generators import animatediff
    from lofid.scene import parse

    t0 = time.perf_counter()
    pipe = build_pipeline(configs, device, dtype)
    build_s = time.perf_counter() - t0
    spec = parse("rainy window, night")
    cuda = device == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    rows = []
    for variant in args.variant_list:
        jobs = JOBS[:args.compiled_jobs] if variant == "compiled" else JOBS
        for case, frames, steps, guidance, scheduler, context, target in jobs:
            if args.tiny:
                steps = min(steps, 2)
                if variant == "compiled":
                    continue              # compiling tiny models on a CPU proves nothing
            kwargs = dict(pipeline=pipe, steps=steps, guidance=guidance, scheduler=scheduler,
                          context=context, device=device, **VARIANTS[variant])
            # warm-up at this shape (kernel selection, allocator, compiling), not timed
            animatediff.generate(spec, 0, size, frames, 8, **dict(kwargs, steps=min(steps, 2)))
            sync()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for r in range(repeats):
                sync()
                t = time.perf_counter()
                loop = animatediff.generate(spec, r + 1, size, frames, 8, **kwargs)
                sync()
                times.append(time.perf_counter() - t)
            peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
            secs = statistics.median(times)
            rows.append({"case": case, "variant": variant, "frames": frames,
                         "size": f"{size[0]}x{size[1]}", "steps": steps, "guidance": guidance,
                         "scheduler": scheduler, "context": context, "seconds": secs,
                         "steps_per_s": steps / secs, "peak_vram_gb": peak, "target_s": target,
                         "windows": len(animatediff.context_windows(
                             frames, context, animatediff.default_stride(context), 0)),
                         "seam_ratio": loop.metrics["seam_ratio"]})

    print(f"AnimateDiff generate, SD1.5 + MotionAdapter v1-5-3 random weights, "
          f"{'fp16' if cuda else 'fp32'}, circular loop, VAE decode included; {card}; "
          f"torch {torch.__version__}; build {build_s:.1f} s; median of {repeats}")
    print(f"{'case':<36} {'variant':<13} {'size':>9} {'win':>3} {'sched':>5} {'s':>7} "
          f"{'steps/s':>7} {'peak GB':>7} {'target':>7}  ok")
    for row in rows:
        ok = row["seconds"] <= row["target_s"]
        if row["peak_vram_gb"] is not None and row["frames"] == 24:
            ok = ok and row["peak_vram_gb"] <= PEAK_VRAM_TARGET_GB
        peak = f"{row['peak_vram_gb']:.2f}" if row["peak_vram_gb"] is not None else "-"
        print(f"{row['case']:<36} {row['variant']:<13} {row['size']:>9} {row['windows']:>3} {row['scheduler']:>5} "
              f"{row['seconds']:>7.3f} {row['steps_per_s']:>7.1f} {peak:>7} "
              f"{'<=' + format(row['target_s'], 'g') + ' s':>7}  "
              f"{'-' if args.tiny else ('yes' if ok else 'NO')}")
    if args.json:
        Path(args.json).write_text(json.dumps({"card": card, "torch": torch.__version__,
                                               "rows": rows}, indent=1), encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
