"""`lofid train style`: a style LoRA for an SD1.5 model, trained on captioned images.

Data: a folder of images (.png, .jpg, .jpeg, .webp, .bmp) each with an optional caption
in a .txt of the same stem, as `lofid prepare images` writes them; an image without a
caption is trained with the trigger word alone. Images are scaled so their short side
is `resolution` and centre-cropped square, or, with `buckets`, trained at their own size
(sides multiples of 8), each batch holding images of one size.

The LoRA (peft) sits on the UNet's attention projections (to_q, to_k, to_v, to_out.0),
and, with --train-text-encoder, on the CLIP text encoder's (q_proj, k_proj, v_proj,
out_proj). The loss is the standard one of Stable Diffusion: noise is added to the VAE
latents at a random timestep and the UNet predicts the noise (or the velocity, when the
model's scheduler is v-prediction), optionally weighted by min-SNR. The result is one
kohya-format .safetensors (lora_unet_..., lora_te_...) with kohya metadata: ComfyUI,
A1111 and `lofid generate --lora` load it.

Every `validation_every` steps the validation prompts are rendered with the LoRA as it
is then, into FILE.training/validation/step-NNNNNN.png (one contact sheet).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from lofid.training import common
from lofid.training.common import Option

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]

# The seed's example prompts (the study room, the coffee shop, the rainy window).
VALIDATION_PROMPTS = [
    "lofivision, lofi style, cozy study room, girl studying at desk, warm lamp light, rain "
    "outside window, books stacked, plants on windowsill, night time, anime illustration style, "
    "soft colors, peaceful atmosphere",
    "lofivision, lofi style, coffee shop interior, steam rising from cup, rainy day outside, "
    "wooden tables, warm lighting, cozy atmosphere, no people, anime background style",
    "lofivision, lofi style, close up window, rain drops on glass, blurred city lights outside, "
    "warm interior glow, night time, melancholic mood, anime style",
]

SCHEMA = [
    Option("model", str, "dreamshaper-8", "the SD1.5 base model: a diffusers folder, a single-file "
           "checkpoint or the name of one among lofid's models", metavar="PATH|NAME"),
    Option("data", str, None, "folder of images with same-stem .txt captions (lofid prepare images)",
           metavar="FOLDER"),
    Option("output", str, None, "the LoRA file to write (FILE.safetensors); checkpoints, losses "
           "and validation sheets go to FILE.training/", metavar="FILE"),
    Option("resolution", int, 512, "training size in pixels (square; a multiple of 8)",
           minimum=64, maximum=2048),
    Option("rank", int, 32, "LoRA rank (usually 32 to 64)", minimum=1, maximum=512),
    Option("alpha", float, 32.0, "LoRA alpha: the update is scaled by alpha/rank",
           minimum=0.0, maximum=4096.0),
    Option("learning_rate", float, 1e-4, "learning rate of the UNet's LoRA",
           minimum=0.0, maximum=1.0),
    Option("text_encoder_lr", float, 5e-5, "learning rate of the text encoder's LoRA",
           minimum=0.0, maximum=1.0),
    Option("train_text_encoder", bool, False, "also put a LoRA on the text encoder"),
    Option("caption_dropout", float, 0.05,
           "share of samples trained with an empty caption (keeps the style without the trigger)",
           minimum=0.0, maximum=1.0),
    Option("min_snr_gamma", float, 5.0, "min-SNR loss weighting (0: plain mean squared error)",
           minimum=0.0, maximum=100.0),
    Option("flip", bool, False, "flip images left-right at random"),
    Option("buckets", bool, False, "train each image at its own size (sides multiples of 8, as "
           "`lofid prepare images --buckets` makes them), batching images of one size together; "
           "off: scale and centre-crop each to resolution x resolution"),
    Option("gradient_checkpointing", bool, False, "recompute activations: less memory, slower"),
    Option("trigger", str, "lofivision", "the trigger word of the captions (kept in the file's metadata)",
           metavar="WORD"),
] + common.output_options(
    VALIDATION_PROMPTS, "pictures", "prompts rendered every validation_every steps",
    "number format of the saved LoRA",
) + common.loop_options(steps=3000, batch_size=4, grad_accum=1, lr_schedule="cosine",
                        warmup_steps=100, checkpoint_every=500, validation_every=500)


def add_arguments(parser) -> None:
    common.add_arguments(parser, SCHEMA, "training/configs/style.toml")


def list_images(folder: Path) -> list[tuple[Path, str | None]]:
    """(image, caption or None) for every image in the folder, sorted by name."""
    out = []
    for f in sorted(Path(folder).iterdir()):
        if f.is_file() and f.suffix.lower() in common.IMAGE_SUFFIXES:
            txt = f.with_suffix(".txt")
            caption = txt.read_text(encoding="utf-8").strip() if txt.is_file() else None
            out.append((f, caption))
    return out


def picture_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, from its header."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def check_buckets(images) -> None:
    """With buckets, every image is trained at its own size: each side must be a multiple
    of 8 (the VAE's block)."""
    for path, _ in images:
        w, h = picture_size(path)
        if w % 8 or h % 8:
            raise common._bad(f"buckets = true, but {path} is {w}x{h}: expected sides that are "
                              "multiples of 8 (make the data with `lofid prepare images --buckets`)")


def check(args):
    """Everything about the input that can be checked without loading a model:
    (cfg, output, train_dir, checkpoint or None)."""
    cfg = common.load_config(SCHEMA, args.config, common.overrides_from_args(args, SCHEMA))
    if cfg["resolution"] % 8:
        raise common._bad(f"resolution = {cfg['resolution']} is not a multiple of 8: expected "
                          "e.g. 512 (the VAE works in blocks of 8 pixels)")
    output = common.check_output(cfg["output"])
    common.check_data_dir(cfg["data"])
    if cfg["buckets"]:
        check_buckets(list_images(Path(cfg["data"]).expanduser()))
    common.check_model(cfg["model"])
    train_dir, checkpoint = common.start_or_resume(cfg, output, args.resume)
    return cfg, output, train_dir, checkpoint


def run(args) -> int:
    cfg, output, train_dir, checkpoint = check(args)
    images = list_images(Path(cfg["data"]).expanduser())
    result = common.train(cfg, lambda ctx: StyleTask(ctx, cfg, images), output=output,
                          train_dir=train_dir, resume=checkpoint)
    if not result.is_main_process:
        return common.EXIT_INTERRUPTED if result.interrupted else 0
    if result.interrupted:
        print(f"interrupted at step {result.step}; checkpoint {result.checkpoint}\n"
              f"go on with: --resume latest (same --output)")
        return common.EXIT_INTERRUPTED
    last = [r["loss"] for r in common.read_losses(train_dir)[-10:]]
    loss = f"{sum(last) / len(last):.4f}" if last else "-"
    print(f"wrote {output} (style LoRA, rank {cfg['rank']}, {result.step} steps, "
          f"{len(images)} images, loss {loss})")
    print(f"run folder {train_dir}: losses.jsonl, checkpoints/, validation/")
    return 0


def read_picture(path: Path, size: int | None):
    """An image as a (3, H, W) float tensor in [-1, 1]: short side scaled to `size` and
    centre-cropped square, or as it is when `size` is None."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is None:
            pixels = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
            return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        scale = size / min(im.width, im.height)
        w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
        im = im.resize((w, h), Image.Resampling.LANCZOS)
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        pixels = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


class StyleTask(common.Task):
    """SD1.5 noise-prediction training of LoRA layers on the UNet (and text encoder)."""

    def __init__(self, ctx: common.Context, cfg: dict, images, parts: common.SD15 | None = None):
        """`images`: [(path, caption or None)] or any sequence whose items are (tensor of
        shape (3, H, W) in [-1, 1], caption) (the benchmark passes pictures in memory).
        `parts`: models already built (the benchmark); loaded from cfg["model"] otherwise."""
        from peft import LoraConfig, inject_adapter_in_model

        self.ctx, self.cfg, self.images = ctx, cfg, list(images)
        sd = parts or common.load_sd15(cfg["model"])
        self.sd = sd
        self.unet, self.vae, self.text_encoder = sd.unet, sd.vae, sd.text_encoder
        self.tokenizer, self.noise = sd.tokenizer, sd.noise_scheduler
        for model in (self.unet, self.vae, self.text_encoder):
            model.requires_grad_(False)
        lora = dict(r=cfg["rank"], lora_alpha=cfg["alpha"], init_lora_weights=True)
        # peft directly (not the models' add_adapter): the same call for diffusers' UNet and
        # transformers' text encoder, whatever their peft integrations require.
        inject_adapter_in_model(LoraConfig(target_modules=UNET_TARGETS, **lora), self.unet)
        if cfg["train_text_encoder"]:
            inject_adapter_in_model(LoraConfig(target_modules=TEXT_ENCODER_TARGETS, **lora),
                                    self.text_encoder)
        if cfg["gradient_checkpointing"]:
            self.unet.enable_gradient_checkpointing()
            if cfg["train_text_encoder"]:
                # The method's name differs across transformers versions.
                te = self.text_encoder
                enable = (getattr(te, "activation_checkpointing_enable", None)
                          or te.gradient_checkpointing_enable)
                enable()
        for model in (self.unet, self.vae, self.text_encoder):
            model.to(ctx.device, dtype=ctx.weight_dtype)
        # The LoRA weights stay float32 under mixed precision: their updates are small.
        for model in self.trainable_models().values():
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
        self.vae.eval()
        self.text_encoder.train(cfg["train_text_encoder"])
        self.prediction = self.noise.config.prediction_type
        self.alphas_cumprod = self.noise.alphas_cumprod.to(ctx.device)

    # --- what the loop asks for -----------------------------------------------------------

    def trainable_models(self) -> dict:
        models = {"unet": self.unet}
        if self.cfg["train_text_encoder"]:
            models["text_encoder"] = self.text_encoder
        return models

    def param_groups(self) -> list[dict]:
        def lora_params(model):
            return [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": lora_params(self.unet), "lr": self.cfg["learning_rate"]}]
        if self.cfg["train_text_encoder"]:
            groups.append({"params": lora_params(self.text_encoder), "lr": self.cfg["text_encoder_lr"]})
        return groups

    def dataset_size(self) -> int:
        return len(self.images)

    def batch_groups(self) -> list | None:
        """With buckets: each image's (height, width), so that a batch holds one size."""
        if not self.cfg["buckets"]:
            return None
        import torch

        return [tuple(src.shape[-2:]) if isinstance(src, torch.Tensor) else picture_size(src)[::-1]
                for src, _ in self.images]

    def load_batch(self, indices, generator):
        import torch

        pictures, captions = [], []
        for i in indices:
            source, caption = self.images[i]
            if not isinstance(source, torch.Tensor):
                source = read_picture(source, None if self.cfg["buckets"] else self.cfg["resolution"])
            picture = source
            if self.cfg["flip"] and torch.rand((), generator=generator).item() < 0.5:
                picture = picture.flip(-1)
            pictures.append(picture)
            captions.append(self.cfg["trigger"] if caption is None else caption)
        return torch.stack(pictures), captions

    def loss(self, batch, models, generator):
        import torch
        import torch.nn.functional as F

        pictures, captions = batch
        device, dtype = self.ctx.device, self.ctx.weight_dtype
        n = len(captions)
        drop = torch.rand(n, generator=generator) < self.cfg["caption_dropout"]
        captions = ["" if d else c for d, c in zip(drop.tolist(), captions)]
        with torch.no_grad():
            posterior = self.vae.encode(pictures.to(device, dtype)).latent_dist
            eps = torch.randn(posterior.mean.shape, generator=generator).to(device, posterior.mean.dtype)
            latents = (posterior.mean + posterior.std * eps) * self.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
        timesteps = torch.randint(0, self.noise.config.num_train_timesteps, (n,),
                                  generator=generator).to(device)
        noisy = self.noise.add_noise(latents, noise, timesteps)
        ids = self.tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt",
                             max_length=self.tokenizer.model_max_length).input_ids.to(device)
        if "text_encoder" in models:
            hidden = models["text_encoder"](ids)[0]
        else:
            with torch.no_grad():
                hidden = self.text_encoder(ids)[0]
        pred = models["unet"](noisy, timesteps, hidden).sample
        if self.prediction == "v_prediction":
            target = self.noise.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        gamma = self.cfg["min_snr_gamma"]
        if gamma > 0:
            # min-SNR weighting: easy (low-noise) timesteps stop dominating the gradient.
            a = self.alphas_cumprod[timesteps].float()
            snr = a / (1 - a)
            weight = torch.clamp(snr, max=gamma) / (snr + 1 if self.prediction == "v_prediction" else snr)
            per_sample = per_sample * weight
        return per_sample.mean()

    # --- files ------------------------------------------------------------------------------

    def save_lora(self, path: Path, step: int) -> None:
        import torch

        cfg = self.cfg
        parts = {"lora_unet_": self.unet}
        if cfg["train_text_encoder"]:
            parts["lora_te_"] = self.text_encoder
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[cfg["save_precision"]]
        common.save_kohya_lora(path, parts, cfg["rank"], cfg["alpha"], self._metadata(path, step), dtype)

    def _metadata(self, path: Path, step: int) -> dict:
        cfg = self.cfg
        tags = Counter()
        for _, caption in self.images:
            for tag in (caption or cfg["trigger"]).split(","):
                if tag.strip():
                    tags[tag.strip()] += 1
        size = cfg["resolution"]
        return {
            "ss_base_model_version": "sd_v1",
            "ss_sd_model_name": self.sd.name,
            "ss_output_name": Path(path).stem,
            "ss_resolution": f"({size}, {size})",
            "ss_steps": step,
            "ss_max_train_steps": cfg["steps"],
            "ss_learning_rate": cfg["learning_rate"],
            "ss_unet_lr": cfg["learning_rate"],
            "ss_text_encoder_lr": cfg["text_encoder_lr"] if cfg["train_text_encoder"] else 0,
            "ss_network_train_unet_only": not cfg["train_text_encoder"],
            "ss_lr_scheduler": cfg["lr_schedule"],
            "ss_lr_warmup_steps": cfg["warmup_steps"],
            "ss_batch_size_per_device": cfg["batch_size"],
            "ss_gradient_accumulation_steps": cfg["grad_accum"],
            "ss_mixed_precision": cfg["mixed_precision"],
            "ss_seed": cfg["seed"],
            "ss_min_snr_gamma": cfg["min_snr_gamma"],
            "ss_caption_dropout_rate": cfg["caption_dropout"],
            "ss_num_train_images": len(self.images),
            "ss_tag_frequency": json.dumps({"data": dict(tags.most_common(200))}),
            "ss_training_comment": f"trigger: {cfg['trigger']}",
            "modelspec.sai_model_spec": "1.0.0",
            "modelspec.architecture": "stable-diffusion-v1/lora",
            "modelspec.implementation": "diffusers",
            "modelspec.title": Path(path).stem,
            "modelspec.resolution": f"{size}x{size}",
            "modelspec.trigger_phrase": cfg["trigger"],
        }

    def validate(self, step: int, folder: Path) -> Path | None:

        import numpy as np
        import torch
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        from lofid.export import contact_sheet, write_png

        prompts = self.cfg["validation_prompts"]
        if not prompts:
            return None
        pipe = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
            scheduler=DDIMScheduler.from_config(self.noise.config), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        size = self.cfg["resolution"]
        was_training = self.unet.training
        self.unet.eval()
        pictures = []
        try:
            with common.autocast(self.ctx):
                for i, prompt in enumerate(prompts):
                    gen = torch.Generator().manual_seed(self.cfg["seed"] + i)
                    out = pipe(prompt, height=size, width=size, generator=gen, output_type="np",
                               num_inference_steps=self.cfg["validation_steps"],
                               guidance_scale=self.cfg["guidance"]).images[0]
                    pictures.append((np.clip(out, 0, 1) * 255).round().astype(np.uint8))
        finally:
            self.unet.train(was_training)
        sheet = contact_sheet(np.stack(pictures), columns=min(len(pictures), 4))
        return write_png(sheet, folder / f"step-{step:06d}.png")
