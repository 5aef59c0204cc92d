"""Tiny SD1.5- and SDXL-shaped models for tests, saved to disk the way users hold them.

Every builder is deterministic (seeded) and fast on CPU, so the real loading and
generation code runs in tests without any downloaded weights:

- tiny_pipeline_dir(tmp)        diffusers folder of a StableDiffusionPipeline
                                (unet/, vae/, text_encoder/, tokenizer/, scheduler/, model_index.json)
- tiny_motion_adapter_dir(tmp)  diffusers folder of a MotionAdapter matching the tiny UNet
- tiny_checkpoint_file(tmp)     one .safetensors in the original SD layout
                                (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*)
- tiny_motion_module_file(tmp)  one .safetensors in the original mm_sd_v15 motion-module layout
- tiny_pipeline(tmp)            a loaded AnimateDiffPipeline built from the two folders
- tiny_sdxl_pipeline_dir(tmp)   diffusers folder of a StableDiffusionXLPipeline (adds
                                text_encoder_2/, tokenizer_2/; UNet with text_time conditioning)
- tiny_sdxl_motion_adapter_dir(tmp)  MotionAdapter folder matching the tiny SDXL UNet
- tiny_sdxl_checkpoint_file(tmp)     one .safetensors in the original SDXL layout

Sizes: latents are 4 channels, VAE factor 8 as in SD (64 px -> 8x8 latents, 32 px ->
4x4), UNet channels (32, 64), cross attention dim 32, CLIP hidden 32, vocabulary of 1000
tokens, motion_max_seq_length 32. SDXL: see the SDXL section below.
"""
from __future__ import annotations

import json
from pathlib import Path

BLOCK_OUT = (32, 64)
LAYERS_PER_BLOCK = 1
CROSS_DIM = 32
VOCAB_SIZE = 1000
MOTION_MAX_SEQ = 32
SEED = 0

UNET_CONFIG = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    block_out_channels=BLOCK_OUT,
    layers_per_block=LAYERS_PER_BLOCK,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=CROSS_DIM,
    attention_head_dim=2,
    norm_num_groups=32,
)
# Four VAE levels give SD's factor 8 between pixels and latents (64 px -> 8x8 latents),
# so size arithmetic in the generator is exercised as with real weights.
VAE_BLOCK_OUT = (32, 32, 64, 64)
VAE_CONFIG = dict(
    sample_size=64,
    in_channels=3,
    out_channels=3,
    block_out_channels=VAE_BLOCK_OUT,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=32,
)
TEXT_CONFIG = dict(
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
    hidden_size=CROSS_DIM,
    intermediate_size=37,
    num_attention_heads=2,
    num_hidden_layers=2,
    layer_norm_eps=1e-5,
    vocab_size=VOCAB_SIZE,
    max_position_embeddings=77,
    projection_dim=32,
)
MOTION_CONFIG = dict(
    block_out_channels=BLOCK_OUT,
    motion_layers_per_block=LAYERS_PER_BLOCK,
    motion_num_attention_heads=2,
    motion_norm_num_groups=32,
    motion_max_seq_length=MOTION_MAX_SEQ,
    use_motion_mid_block=True,
)
SCHEDULER_CONFIG = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="linear",
    clip_sample=False,
    steps_offset=1,
    set_alpha_to_one=False,
)


# --- tokenizer -------------------------------------------------------------------------

def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE (GPT-2 / CLIP) uses for bytes."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tiny_tokenizer(folder: Path) -> Path:
    """A real CLIP BPE tokenizer with a ~1000-token vocabulary (bytes, word ends, merges)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = _byte_alphabet()
    tokens = list(alphabet) + [c + "</w>" for c in alphabet]
    # Merges of common lower-case letter pairs, so prompt words are not all single bytes.
    letters = "etaoinsrhldcumfpgwybvk"
    merges = []
    for a in letters:
        for b in letters:
            if len(tokens) >= VOCAB_SIZE - 2 - 2:
                break
            merges.append(f"{a} {b}</w>")
            tokens.append(f"{a}{b}</w>")
            merges.append(f"{a} {b}")
            tokens.append(f"{a}{b}")
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) <= VOCAB_SIZE, len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "do_lower_case": True,
            }
        ),
        encoding="utf-8",
    )
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
            }
        ),
        encoding="utf-8",
    )
    return folder


# --- model builders (in memory) ----------------------------------------------------------

def build_unet(seed: int = SEED):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**UNET_CONFIG).eval()


def build_vae(seed: int = SEED):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed + 1)
    return AutoencoderKL(**VAE_CONFIG).eval()


def build_text_encoder(seed: int = SEED):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed + 2)
    return CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).eval()


def build_motion_adapter(seed: int = SEED):
    import torch
    from diffusers import MotionAdapter

    torch.manual_seed(seed + 3)
    adapter = MotionAdapter(**MOTION_CONFIG)
    # diffusers zero-initialises each motion module's proj_out, which would make the motion
    # module an identity; small random values let tests see frames influence each other.
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if "proj_out" in name:
                p.normal_(0.0, 0.02)
    return adapter.eval()


def build_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG)


# --- saved forms --------------------------------------------------------------------------

def tiny_pipeline_dir(tmp, name: str = "tiny-sd15", seed: int = SEED) -> Path:
    """A diffusers StableDiffusionPipeline folder (the layout of an SD1.5 repo snapshot)."""
    from diffusers import StableDiffusionPipeline

    out = Path(tmp) / name
    if (out / "model_index.json").exists():
        return out
    write_tiny_tokenizer(out / "tokenizer")
    from transformers import CLIPTokenizer

    pipe = StableDiffusionPipeline(
        unet=build_unet(seed),
        vae=build_vae(seed),
        text_encoder=build_text_encoder(seed),
        tokenizer=CLIPTokenizer.from_pretrained(out / "tokenizer"),
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def tiny_motion_adapter_dir(tmp, name: str = "tiny-motion-adapter", seed: int = SEED) -> Path:
    """A diffusers MotionAdapter folder (config.json with _class_name MotionAdapter)."""
    out = Path(tmp) / name
    if (out / "config.json").exists():
        return out
    build_motion_adapter(seed).save_pretrained(out, safe_serialization=True)
    return out


def _diffusers_unet_to_original(sd: dict, n_levels: int | None = None) -> dict:
    """Rename a diffusers UNet2DConditionModel state dict to the original SD (ldm) layout.

    Covers what the tiny UNet has: input/middle/output blocks with resnets, attentions,
    down/up samplers; time embedding; in/out convs. Attention blocks keep their inner
    names in both layouts. n_levels: down levels (default: the tiny SD1.5 UNet's); SDXL's
    add_embedding becomes label_emb as in SDXL files.
    """
    n_levels = len(BLOCK_OUT) if n_levels is None else n_levels
    per = LAYERS_PER_BLOCK + 1  # ldm slots per level: the layers plus a sampler slot
    res_map = {
        "norm1.": "in_layers.0.", "conv1.": "in_layers.2.", "time_emb_proj.": "emb_layers.1.",
        "norm2.": "out_layers.0.", "conv2.": "out_layers.3.", "conv_shortcut.": "skip_connection.",
    }
    plain: list[tuple[str, str]] = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("add_embedding.linear_1.", "label_emb.0.0."),
        ("add_embedding.linear_2.", "label_emb.0.2."),
    ]
    resnets: list[tuple[str, str]] = [("mid_block.resnets.0.", "middle_block.0."), ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(n_levels):
        for j in range(LAYERS_PER_BLOCK):
            resnets.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{per * i + j + 1}.0."))
            plain.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{per * i + j + 1}.1."))
        plain.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{per * (i + 1)}.0.op."))
        has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
        for j in range(per):
            resnets.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{per * i + j}.0."))
            plain.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{per * i + j}.1."))
        # The upsampler shares the level's last slot, after the attention when there is one.
        plain.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{per * i + per - 1}.{2 if has_attn else 1}."))

    out = {}
    for key, value in sd.items():
        new = None
        for a, b in resnets:
            if key.startswith(a):
                rest = key[len(a):]
                for da, lb in res_map.items():
                    if rest.startswith(da):
                        rest = lb + rest[len(da):]
                        break
                new = b + rest
                break
        if new is None:
            for a, b in plain:
                if key.startswith(a):
                    new = b + key[len(a):]
                    break
        if new is None:
            raise KeyError(f"no original-layout name for UNet key {key!r}")
        out["model.diffusion_model." + new] = value
    return out


def _diffusers_vae_to_original(sd: dict) -> dict:
    """Rename a diffusers AutoencoderKL state dict to the original first_stage_model layout."""
    out = {}
    for key, value in sd.items():
        new = key
        for side in ("encoder", "decoder"):
            new = new.replace(f"{side}.mid_block.resnets.0.", f"{side}.mid.block_1.")
            new = new.replace(f"{side}.mid_block.resnets.1.", f"{side}.mid.block_2.")
            new = new.replace(f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1.")
            new = new.replace(f"{side}.conv_norm_out.", f"{side}.norm_out.")
        n = len(VAE_BLOCK_OUT)
        for i in range(n):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"encoder.down.{i}.downsample.conv.")
            # decoder up blocks are stored in reverse order in the original layout
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"decoder.up.{n - 1 - i}.upsample.conv.")
        new = new.replace(".conv_shortcut.", ".nin_shortcut.")
        if ".mid.attn_1." in new:
            new = (
                new.replace(".group_norm.", ".norm.")
                .replace(".to_q.", ".q.")
                .replace(".to_k.", ".k.")
                .replace(".to_v.", ".v.")
                .replace(".to_out.0.", ".proj_out.")
            )
            if new.endswith(".weight") and value.ndim == 2:
                value = value[:, :, None, None]  # original attention uses 1x1 convs
        out["first_stage_model." + new] = value
    return out


def tiny_checkpoint_file(tmp, name: str = "tiny-sd15.safetensors", seed: int = SEED) -> Path:
    """One .safetensors in the original SD1.5 layout (as downloaded from Civitai).

    Loading it needs the tiny folder as `config` (diffusers infers nothing tiny by itself).
    """
    from safetensors.torch import save_file

    out = Path(tmp) / name
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {}
    sd.update(_diffusers_unet_to_original(build_unet(seed).state_dict()))
    sd.update(_diffusers_vae_to_original(build_vae(seed).state_dict()))
    for k, v in build_text_encoder(seed).state_dict().items():
        # Original checkpoints hold the transformers CLIPTextModel with its text_model wrapper.
        k = k if k.startswith("text_model.") else "text_model." + k
        sd["cond_stage_model.transformer." + k] = v
    sd = {k: v.contiguous().clone() for k, v in sd.items()}
    save_file(sd, str(out), metadata={"format": "pt"})
    return out


def _motion_to_original(sd: dict) -> dict:
    """Rename diffusers MotionAdapter keys to the original mm_sd_v15 motion-module layout."""
    import re

    import torch

    out = {}
    for key, value in sd.items():
        new = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", key)
        new = (
            new.replace(".attn1.", ".attention_blocks.0.")
            .replace(".attn2.", ".attention_blocks.1.")
            .replace(".norm1.", ".norms.0.")
            .replace(".norm2.", ".norms.1.")
            .replace(".norm3.", ".ff_norm.")
        )
        out[new] = value
    # The original files also carry the sinusoidal position table of each attention;
    # diffusers recomputes it, but the key is how the format is recognised.
    for key in list(out):
        if key.endswith(".attention_blocks.0.to_q.weight") or key.endswith(".attention_blocks.1.to_q.weight"):
            dim = out[key].shape[1]
            pe_key = key[: -len("to_q.weight")] + "pos_encoder.pe"
            out[pe_key] = torch.zeros(1, MOTION_MAX_SEQ, dim)
    return out


def tiny_motion_module_file(tmp, name: str = "tiny_mm_sd_v15.safetensors", seed: int = SEED) -> Path:
    """One .safetensors in the original motion-module layout (mm_sd_v15_v2 / v3_sd15_mm)."""
    from safetensors.torch import save_file

    out = Path(tmp) / name
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = _motion_to_original(build_motion_adapter(seed).state_dict())
    save_file({k: v.contiguous().clone() for k, v in sd.items()}, str(out), metadata={"format": "pt"})
    return out


def tiny_pipeline(tmp, seed: int = SEED):
    """A loaded AnimateDiffPipeline (CPU, fp32) from the tiny folders."""
    from diffusers import AnimateDiffPipeline, MotionAdapter

    base = tiny_pipeline_dir(tmp, seed=seed)
    adapter = MotionAdapter.from_pretrained(tiny_motion_adapter_dir(tmp, seed=seed))
    pipe = AnimateDiffPipeline.from_pretrained(base, motion_adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_unet_keys_original() -> list[str]:
    """Key names of the tiny UNet in the original layout (for tests of key detection)."""
    return sorted(_diffusers_unet_to_original(build_unet().state_dict()))


# --- the SDXL family ------------------------------------------------------------------------
#
# SDXL differs from SD1.5 in what the loader and the denoiser must handle: two text
# encoders (the second with a projection whose pooled output conditions the UNet), a UNet
# with addition_embed_type "text_time" (pooled text + size/crop time ids added to the
# timestep embedding), cross attention over both encoders' features side by side, and one
# fewer down level (SD1.5 has 4, SDXL 3: so motion adapters of the two families differ in
# shape, as the published ones do). The tiny SDXL UNet keeps those traits: 3 levels
# (32, 64, 128), no attention in the first level, text_time with 8-wide time embeddings.

SDXL_BLOCK_OUT = (32, 64, 128)
# The two text encoders differ in width, as SDXL's do (768 and 1280): diffusers' single-file
# loader tells them apart by it.
SDXL_TEXT_DIM = 32                       # the first encoder's hidden size; the pooled size
SDXL_TEXT_2_DIM = 64                     # the second encoder's hidden size
SDXL_CROSS_DIM = SDXL_TEXT_DIM + SDXL_TEXT_2_DIM   # both encoders' features side by side
SDXL_TIME_DIM = 8
SDXL_UNET_CONFIG = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    block_out_channels=SDXL_BLOCK_OUT,
    layers_per_block=LAYERS_PER_BLOCK,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 1, 2),
    attention_head_dim=(2, 4, 8),
    use_linear_projection=True,
    cross_attention_dim=SDXL_CROSS_DIM,
    addition_embed_type="text_time",
    addition_time_embed_dim=SDXL_TIME_DIM,
    # pooled text (projection_dim) + 6 time ids (original size, crop, target size)
    projection_class_embeddings_input_dim=6 * SDXL_TIME_DIM + SDXL_TEXT_DIM,
    norm_num_groups=32,
)
SDXL_TEXT_2_CONFIG = dict(TEXT_CONFIG, hidden_size=SDXL_TEXT_2_DIM, intermediate_size=64,
                          projection_dim=SDXL_TEXT_DIM)
SDXL_MOTION_CONFIG = dict(
    block_out_channels=SDXL_BLOCK_OUT,
    motion_layers_per_block=LAYERS_PER_BLOCK,
    motion_num_attention_heads=2,
    motion_norm_num_groups=32,
    motion_max_seq_length=MOTION_MAX_SEQ,
    use_motion_mid_block=False,          # as animatediff-motion-adapter-sdxl-beta
)


def build_sdxl_unet(seed: int = SEED):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed + 10)
    return UNet2DConditionModel(**SDXL_UNET_CONFIG).eval()


def build_sdxl_text_encoders(seed: int = SEED):
    """(CLIPTextModel, CLIPTextModelWithProjection): SDXL's two text encoders."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed + 11)
    first = CLIPTextModel(CLIPTextConfig(**dict(TEXT_CONFIG, hidden_size=SDXL_TEXT_DIM))).eval()
    torch.manual_seed(seed + 12)
    second = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_2_CONFIG)).eval()
    return first, second


def build_sdxl_motion_adapter(seed: int = SEED):
    import torch
    from diffusers import MotionAdapter

    torch.manual_seed(seed + 13)
    adapter = MotionAdapter(**SDXL_MOTION_CONFIG)
    with torch.no_grad():   # non-zero proj_out: see build_motion_adapter
        for name, p in adapter.named_parameters():
            if "proj_out" in name:
                p.normal_(0.0, 0.02)
    return adapter.eval()


def tiny_sdxl_pipeline_dir(tmp, name: str = "tiny-sdxl", seed: int = SEED) -> Path:
    """A diffusers StableDiffusionXLPipeline folder (unet/, vae/, text_encoder/,
    text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/, model_index.json)."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    out = Path(tmp) / name
    if (out / "model_index.json").exists():
        return out
    write_tiny_tokenizer(out / "tokenizer")
    write_tiny_tokenizer(out / "tokenizer_2")
    first, second = build_sdxl_text_encoders(seed)
    pipe = StableDiffusionXLPipeline(
        unet=build_sdxl_unet(seed),
        vae=build_vae(seed),
        text_encoder=first,
        text_encoder_2=second,
        tokenizer=CLIPTokenizer.from_pretrained(out / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(out / "tokenizer_2"),
        scheduler=build_scheduler(),
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def tiny_sdxl_motion_adapter_dir(tmp, name: str = "tiny-motion-adapter-sdxl", seed: int = SEED) -> Path:
    """A diffusers MotionAdapter folder whose channels fit the tiny SDXL UNet."""
    out = Path(tmp) / name
    if (out / "config.json").exists():
        return out
    build_sdxl_motion_adapter(seed).save_pretrained(out, safe_serialization=True)
    return out


def _text_model_to_open_clip(sd: dict, prefix: str) -> dict:
    """Rename a transformers CLIP text model to the OpenCLIP layout SDXL files use for
    their second text encoder (q, k, v projections fused into in_proj)."""
    import re

    import torch

    out, fused = {}, {}
    for key, value in sd.items():
        k = key.replace("text_model.", "", 1)
        if k.endswith("position_ids"):
            continue
        if k == "text_projection.weight":
            out[prefix + "text_projection"] = value.T   # OpenCLIP multiplies from the right
            continue
        simple = {"embeddings.position_embedding.weight": "positional_embedding",
                  "embeddings.token_embedding.weight": "token_embedding.weight",
                  "final_layer_norm.weight": "ln_final.weight",
                  "final_layer_norm.bias": "ln_final.bias"}
        if k in simple:
            out[prefix + simple[k]] = value
            continue
        m = re.match(r"encoder\.layers\.(\d+)\.(.*)$", k)
        if m is None:
            raise KeyError(f"no OpenCLIP name for text encoder key {key!r}")
        layer, rest = m.group(1), m.group(2)
        qkv = re.match(r"self_attn\.([qkv])_proj\.(weight|bias)$", rest)
        if qkv:
            fused.setdefault((layer, qkv.group(2)), {})[qkv.group(1)] = value
            continue
        rest = (rest.replace("layer_norm1.", "ln_1.").replace("layer_norm2.", "ln_2.")
                .replace("mlp.fc1.", "mlp.c_fc.").replace("mlp.fc2.", "mlp.c_proj.")
                .replace("self_attn.", "attn."))
        out[f"{prefix}transformer.resblocks.{layer}.{rest}"] = value
    for (layer, what), parts in fused.items():
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{what}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]])
    return out


def tiny_sdxl_checkpoint_file(tmp, name: str = "tiny-sdxl.safetensors", seed: int = SEED) -> Path:
    """One .safetensors in the original SDXL layout: model.diffusion_model.*,
    first_stage_model.*, conditioner.embedders.0.transformer.* (CLIP) and
    conditioner.embedders.1.model.* (OpenCLIP). The same weights as
    tiny_sdxl_pipeline_dir; loading it needs that folder as `config`."""
    from safetensors.torch import save_file

    out = Path(tmp) / name
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    first, second = build_sdxl_text_encoders(seed)
    sd = {}
    sd.update(_diffusers_unet_to_original(build_sdxl_unet(seed).state_dict(), len(SDXL_BLOCK_OUT)))
    sd.update(_diffusers_vae_to_original(build_vae(seed).state_dict()))
    for k, v in first.state_dict().items():
        k = k if k.startswith("text_model.") else "text_model." + k
        sd["conditioner.embedders.0.transformer." + k] = v
    sd.update(_text_model_to_open_clip(second.state_dict(), "conditioner.embedders.1.model."))
    save_file({k: v.contiguous().clone() for k, v in sd.items()}, str(out), metadata={"format": "pt"})
    return out
