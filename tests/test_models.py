"""lofid.models: finding, checking and loading weights, on tiny models saved to disk."""
from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_models as T  # noqa: E402
from lofid import models as M  # noqa: E402
from lofid.cli import models as models_cli  # noqa: E402

from helpers import Lazy, needs, save_file  # noqa: E402

torch = Lazy("torch")
pytestmark = needs("torch")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """One folder holding every form a user may have, built once for the module."""
    d = tmp_path_factory.mktemp("zoo")
    T.tiny_pipeline_dir(d)
    T.tiny_motion_adapter_dir(d)
    T.tiny_checkpoint_file(d)
    T.tiny_motion_module_file(d)
    loras = d / "loras"
    loras.mkdir()
    # kohya style LoRA (as from Civitai): lora_unet_* / lora_te_* with lora_down/lora_up/alpha
    save_file({
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": torch.zeros(4, 32),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": torch.zeros(32, 4),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": torch.tensor(4.0),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.zeros(4, 32),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.zeros(32, 4),
    }, str(loras / "ghibli_style.safetensors"))
    # peft / diffusers style LoRA in a folder with the generic file name diffusers writes
    (loras / "watercolor").mkdir()
    save_file({
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 32),
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(32, 4),
    }, str(loras / "watercolor" / "pytorch_lora_weights.safetensors"))
    # motion LoRA (diffusers layout of the published zoom/pan motion LoRAs)
    save_file({
        "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.lora.down.weight": torch.zeros(4, 32),
        "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.lora.up.weight": torch.zeros(32, 4),
    }, str(loras / "zoom_in.safetensors"))
    # a .ckpt checkpoint (a plain state dict, as torch.load(weights_only=True) accepts)
    sd = {k: torch.zeros(v) for k, v in M.read_header(d / "tiny-sd15.safetensors").items()
          if k.startswith(("model.diffusion_model.input_blocks.0", "first_stage_model.encoder.conv_in",
                           "cond_stage_model.transformer.text_model.embeddings"))}
    (d / "ckpts").mkdir()
    torch.save({"state_dict": sd}, str(d / "ckpts" / "old_model.ckpt"))
    return d


@pytest.fixture(autouse=True)
def _no_user_models(tmp_path, monkeypatch):
    """Only the test's own folders are searched: an empty HF cache and data folder."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("LOFID_MODELS", raising=False)


def _gen(pipe, seed=0):
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a cozy study room, rain", num_frames=8, num_inference_steps=2, height=32, width=32,
               generator=torch.Generator().manual_seed(seed), output_type="np")
    return np.asarray(out.frames)


# --- the tiny models themselves --------------------------------------------------------

def test_tiny_pipeline_folder_has_the_sd_layout_and_animatediff_safe_scheduler(zoo):
    d = zoo / "tiny-sd15"
    index = json.loads((d / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (d / part).is_dir(), part
    sched = json.loads((d / "scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "DDIMScheduler"
    assert sched["beta_schedule"] == "linear" and sched["clip_sample"] is False
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(d / "tokenizer")
    assert tok.model_max_length == 77
    assert len(tok) <= 1000
    ids = tok("rainy window at night")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) > 4


def test_tiny_models_are_deterministic():
    a, b = T.build_unet().state_dict(), T.build_unet().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = T.build_motion_adapter().state_dict()
    d = T.build_motion_adapter(seed=1).state_dict()
    assert any(not torch.equal(c[k], d[k]) for k in c)


def test_tiny_single_files_hold_the_same_weights_as_the_folders(zoo):
    # Exact: a single file's conversion only renames keys and reshapes tensors.
    from diffusers import MotionAdapter, StableDiffusionPipeline

    single = StableDiffusionPipeline.from_single_file(
        str(zoo / "tiny-sd15.safetensors"), config=str(zoo / "tiny-sd15"), local_files_only=True)
    folder = StableDiffusionPipeline.from_pretrained(zoo / "tiny-sd15")
    for part in ("unet", "vae", "text_encoder"):
        a, b = getattr(single, part).state_dict(), getattr(folder, part).state_dict()
        assert a.keys() == b.keys(), part
        assert all(torch.equal(a[k], b[k]) for k in a), part
    mm = MotionAdapter.from_single_file(str(zoo / "tiny_mm_sd_v15.safetensors"),
                                        config=str(zoo / "tiny-motion-adapter"), local_files_only=True)
    ref = MotionAdapter.from_pretrained(zoo / "tiny-motion-adapter").state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in mm.state_dict().items())


# --- finding -----------------------------------------------------------------------------

def test_list_finds_every_kind_and_format_in_a_configured_folder(zoo):
    found = {(r.name, r.kind, r.format) for r in M.list_models([zoo])}
    assert ("tiny-sd15", "checkpoint", "diffusers") in found
    assert ("tiny-sd15", "checkpoint", "single_file") in found
    assert ("tiny-motion-adapter", "motion_adapter", "diffusers") in found
    assert ("tiny_mm_sd_v15", "motion_adapter", "original_mm") in found
    assert ("ghibli_style", "lora", "kohya") in found
    assert ("watercolor", "lora", "peft") in found
    assert ("zoom_in", "motion_lora", "peft") in found
    assert ("old_model", "checkpoint", "single_file") in found
    # the parts of a diffusers folder are not listed as models of their own
    assert not any("unet" in str(r.path.relative_to(zoo)).split("/") for r in M.list_models([zoo]))


def test_find_by_path_and_by_name(zoo):
    by_path = M.find("motion_adapter", str(zoo / "tiny_mm_sd_v15.safetensors"))
    assert by_path.format == "original_mm" and by_path.path == zoo / "tiny_mm_sd_v15.safetensors"
    assert M.find("checkpoint", str(zoo / "tiny-sd15")).format == "diffusers"
    # by name: a folder name, a file stem, a file name, a generic file named by its folder
    assert M.find("motion_adapter", "tiny-motion-adapter", [zoo]).path == zoo / "tiny-motion-adapter"
    assert M.find("lora", "ghibli_style", [zoo]).format == "kohya"
    assert M.find("lora", "ghibli_style.safetensors", [zoo]).format == "kohya"
    assert M.find("lora", "watercolor", [zoo]).path.name == "pytorch_lora_weights.safetensors"
    assert M.find("motion_lora", "zoom_in", [zoo]).kind == "motion_lora"
    # the same name as a folder and a file: the folder, which needs no borrowed configs
    assert M.find("checkpoint", "tiny-sd15", [zoo]).format == "diffusers"


def test_find_through_lofid_models_env(zoo, monkeypatch):
    monkeypatch.setenv("LOFID_MODELS", str(zoo))
    assert M.find("lora", "ghibli_style").path == zoo / "loras" / "ghibli_style.safetensors"


def _cache_repo(cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """A hub cache entry as huggingface_hub lays it out: blobs, a snapshot, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / "0123abcd"
    for rel, src in files.items():
        dst = snap / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        blob = repo / "blobs" / (rel.replace("/", "_") + ".blob")
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, blob)
        dst.symlink_to(blob)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("0123abcd")
    return snap


def test_find_in_the_hugging_face_cache_by_repo_id_and_pull_name(zoo, tmp_path):
    cache = tmp_path / "hf-cache"
    ad = zoo / "tiny-motion-adapter"
    snap = _cache_repo(cache, "guoyww/animatediff-motion-adapter-v1-5-3", {
        "config.json": ad / "config.json",
        "diffusion_pytorch_model.safetensors": ad / "diffusion_pytorch_model.safetensors",
    })
    # a repo holding loose single files (as AnimateDiff-Lightning does), diffusers key layout
    _cache_repo(cache, "ByteDance/AnimateDiff-Lightning", {
        "animatediff_lightning_4step_diffusers.safetensors": ad / "diffusion_pytorch_model.safetensors",
    })
    ref = M.find("motion_adapter", "guoyww/animatediff-motion-adapter-v1-5-3")
    assert ref.path == snap and ref.format == "diffusers"
    assert ref.name == "guoyww/animatediff-motion-adapter-v1-5-3"
    assert M.find("motion_adapter", "animatediff-v1-5-3").path == snap
    light = M.find("motion_adapter", "animatediff-lightning")
    assert light.format == "single_file" and light.path.name == "animatediff_lightning_4step_diffusers.safetensors"
    assert M.find("motion_adapter", "animatediff_lightning_4step_diffusers").path == light.path
    assert M.find("motion_adapter", "ByteDance/AnimateDiff-Lightning").path == light.path
    assert cache in M.search_paths()
    # configured folders come before the cache
    assert M.search_paths([zoo])[0] == zoo
    # and a cached single file loads into a MotionAdapter with the folder's weights, with
    # the folder's config or with one derived from its shapes
    ref_sd = M.load_motion_adapter(M.describe(ad)).state_dict()
    for config in (ad, None):
        loaded = M.load_motion_adapter(light, config=config).state_dict()
        assert loaded.keys() == ref_sd.keys()
        assert all(torch.equal(v, ref_sd[k]) for k, v in loaded.items())


# --- error messages ------------------------------------------------------------------------

def test_missing_path_names_the_path_and_what_was_expected(tmp_path):
    p = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(M.ModelError) as e:
        M.find("checkpoint", str(p))
    assert str(p) in str(e.value) and "expected" in str(e.value)


def test_wrong_kind_is_refused_with_both_kinds_named(zoo):
    p = zoo / "loras" / "ghibli_style.safetensors"
    with pytest.raises(M.ModelError) as e:
        M.find("checkpoint", str(p))
    msg = str(e.value)
    assert str(p) in msg and "lora" in msg and "expected a checkpoint" in msg
    with pytest.raises(M.ModelError, match="is a checkpoint.*expected a motion_adapter"):
        M.find("motion_adapter", "tiny-sd15", [zoo])


def test_unknown_name_lists_where_it_looked_and_close_names(zoo):
    with pytest.raises(M.ModelError) as e:
        M.find("lora", "ghibli_styl", [zoo])
    assert str(zoo) in str(e.value) and "ghibli_style" in str(e.value)
    # a known downloadable model that is not there yet says how to get it
    with pytest.raises(M.ModelError, match="lofid models pull animatediff-v1-5-3"):
        M.find("motion_adapter", "guoyww/animatediff-motion-adapter-v1-5-3", [zoo])


def test_truncated_and_foreign_files_are_refused(zoo, tmp_path):
    data = (zoo / "tiny_mm_sd_v15.safetensors").read_bytes()
    cut = tmp_path / "half.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(M.ModelError) as e:
        M.find("motion_adapter", str(cut))
    assert str(cut) in str(e.value) and "truncated" in str(e.value)
    # a text file with a weights name
    junk = tmp_path / "notes.safetensors"
    junk.write_text("hello")
    with pytest.raises(M.ModelError, match="notes.safetensors"):
        M.describe(junk)
    # a valid safetensors file that is no model (a VAE alone)
    vae = tmp_path / "vae_only.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)}, str(vae))
    with pytest.raises(M.ModelError, match="not a model lofid can use"):
        M.describe(vae)
    # a bare UNet folder is no full checkpoint
    unet = zoo / "tiny-sd15" / "unet"
    with pytest.raises(M.ModelError, match="UNet2DConditionModel.*model_index.json"):
        M.describe(unet)


def test_ckpt_is_read_only_as_plain_weights(zoo, tmp_path):
    assert M.describe(zoo / "ckpts" / "old_model.ckpt").kind == "checkpoint"

    # the published motion modules (mm_sd_v15_v2.ckpt) are plain .ckpt state dicts
    from safetensors.torch import load_file

    mm = tmp_path / "mm_sd_v15_v2.ckpt"
    torch.save(load_file(str(zoo / "tiny_mm_sd_v15.safetensors")), str(mm))
    ref = M.find("motion_adapter", str(mm))
    assert ref.format == "original_mm" and M.verify(ref) == []
    got = M.load_motion_adapter(ref, config=zoo / "tiny-motion-adapter").state_dict()
    want = M.load_motion_adapter(M.describe(zoo / "tiny-motion-adapter")).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in got.items())

    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.x": Payload()}}, str(bad))
    with pytest.raises(M.ModelError) as e:
        M.describe(bad)
    assert "weights_only" in str(e.value) and str(bad) in str(e.value)


class Payload:
    """An arbitrary object: loading it would need full (unsafe) unpickling."""


# --- verify --------------------------------------------------------------------------------

def test_verify_passes_good_models_and_names_shape_problems(zoo, tmp_path):
    for ref in M.list_models([zoo]):
        assert M.verify(ref) == [], ref
    # a motion adapter whose config disagrees with its weights
    bad = tmp_path / "bad-adapter"
    shutil.copytree(zoo / "tiny-motion-adapter", bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["block_out_channels"] = [320, 640]
    (bad / "config.json").write_text(json.dumps(cfg))
    problems = M.verify(M.describe(bad))
    assert problems and "(32, 64)" in problems[0] and "(320, 640)" in problems[0]
    # a checkpoint file without its VAE
    keys = {k: torch.zeros(1) for k in ("model.diffusion_model.out.2.bias", "cond_stage_model.transformer.x")}
    novae = tmp_path / "novae.safetensors"
    save_file(keys, str(novae))
    assert any("VAE" in p for p in M.verify(M.describe(novae)))
    # a LoRA whose up weight is missing
    lora = tmp_path / "half_lora.safetensors"
    save_file({"lora_unet_a.lora_down.weight": torch.zeros(4, 8)}, str(lora))
    assert any("lora_up" in p for p in M.verify(M.describe(lora)))
    # a file removed after it was found
    ref = M.describe(lora)
    lora.unlink()
    assert "missing" in M.verify(ref)[0]


# --- loading -------------------------------------------------------------------------------

def test_load_pipeline_from_the_tiny_folder_generates_frames(zoo):
    ck = M.find("checkpoint", "tiny-sd15", [zoo])
    ma = M.find("motion_adapter", "tiny-motion-adapter", [zoo])
    pipe = M.load_pipeline(ck, ma, "cpu", torch.float32)
    assert type(pipe).__name__ == "AnimateDiffPipeline"
    frames = _gen(pipe)
    assert frames.shape == (1, 8, 32, 32, 3)
    assert np.isfinite(frames).all() and frames.std() > 0
    # the weights are the tiny models' own, not fresh random ones (built again here by the
    # same seeded code that wrote the files in this run: the same bytes)
    for part, build in (("vae", T.build_vae), ("text_encoder", T.build_text_encoder)):
        want = build().state_dict()
        got = getattr(pipe, part).state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want), part
    # a second run with the same seed gives the same frames
    assert np.array_equal(frames, _gen(pipe))


def test_load_pipeline_from_single_files(zoo):
    ck = M.describe(zoo / "tiny-sd15.safetensors")
    mm = M.describe(zoo / "tiny_mm_sd_v15.safetensors")
    # the checkpoint borrows configs + tokenizer from the matching folder among the models
    # (here found beside the file, without being told where to look)
    pipe = M.load_pipeline(ck, mm, "cpu", torch.float32)
    frames = _gen(pipe)
    assert frames.shape == (1, 8, 32, 32, 3) and np.isfinite(frames).all()
    assert M.unet_channels_of_checkpoint(M.read_header(ck.path)) == T.BLOCK_OUT
    ref = M.load_motion_adapter(M.describe(zoo / "tiny-motion-adapter")).state_dict()
    got = pipe.unet.state_dict()
    motion = {k: v for k, v in got.items() if "motion_modules" in k}
    assert motion and all(torch.equal(v, ref[k]) for k, v in motion.items() if k in ref)


def test_fp16_only_folder_loads_with_its_variant(zoo, tmp_path):
    half = tmp_path / "half-sd15"
    shutil.copytree(zoo / "tiny-sd15", half)
    for f in list(half.glob("*/*.safetensors")):
        f.rename(f.with_name(f.name.replace(".safetensors", ".fp16.safetensors")))
    ref = M.find("checkpoint", "half-sd15", [tmp_path])
    assert M.verify(ref) == []
    pipe = M.load_pipeline(ref, M.describe(zoo / "tiny-motion-adapter"), "cpu", torch.float32)
    want = T.build_vae().state_dict()
    assert all(torch.equal(pipe.vae.state_dict()[k], want[k]) for k in want)


def test_unet_channels_are_read_from_sd15_shaped_headers():
    # the published SD1.5 layout: 2 resnets per level, a downsampler between levels
    keys, i = {}, 1
    for level, c in enumerate((320, 640, 1280, 1280)):
        for _ in range(2):
            keys[f"model.diffusion_model.input_blocks.{i}.0.out_layers.3.weight"] = (c, c, 3, 3)
            i += 1
        if level < 3:
            keys[f"model.diffusion_model.input_blocks.{i}.0.op.weight"] = (c, c, 3, 3)
            i += 1
    assert M.unet_channels_of_checkpoint(keys) == (320, 640, 1280, 1280)


def test_single_file_checkpoint_without_a_matching_config_folder_says_so(zoo, tmp_path):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(zoo / "tiny-sd15.safetensors", lonely / "tiny.safetensors")
    with pytest.raises(M.ModelError, match="needs a diffusers folder of the same family"):
        M.load_pipeline(M.describe(lonely / "tiny.safetensors"), M.describe(zoo / "tiny-motion-adapter"),
                        "cpu", torch.float32, config_dirs=[lonely])


def test_mismatched_motion_adapter_is_refused_before_loading(zoo, tmp_path):
    big = tmp_path / "mm_sd_v15_v2.safetensors"
    save_file({
        f"down_blocks.{i}.motion_modules.0.temporal_transformer.proj_in.weight": torch.zeros(c, c)
        for i, c in enumerate((320, 640, 1280, 1280))
    }, str(big))
    with pytest.raises(M.ModelError) as e:
        M.load_pipeline(M.describe(zoo / "tiny-sd15"), M.describe(big), "cpu", torch.float32)
    msg = str(e.value)
    assert str(big) in msg and "(320, 640, 1280, 1280)" in msg and "(32, 64)" in msg


def test_load_pipeline_refuses_swapped_arguments(zoo):
    with pytest.raises(M.ModelError, match="expected a checkpoint"):
        M.load_pipeline(M.describe(zoo / "tiny-motion-adapter"), M.describe(zoo / "tiny-sd15"), "cpu", None)


# --- pull and the command line ----------------------------------------------------------------

def test_pull_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(M.ModelError, match="HF_HUB_OFFLINE"):
        M.pull()
    with pytest.raises(M.ModelError, match="unknown model 'sd-turbo'.*dreamshaper-8"):
        M.pull(["sd-turbo"])
    err = io.StringIO()
    assert models_cli.pull_command(["animatediff-v1-5-3"], out=io.StringIO(), err=err) == 1
    assert "HF_HUB_OFFLINE" in err.getvalue()
    assert models_cli.pull_command(["nope"], out=io.StringIO(), err=io.StringIO()) == 2


def test_models_commands_list_and_verify(zoo, tmp_path):
    import argparse

    parser = argparse.ArgumentParser(prog="lofid")
    models_cli.add_parser(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    assert models_cli.list_command([zoo], out=out) == 0
    text = out.getvalue()
    assert "KIND" in text and "ghibli_style" in text and "tiny_mm_sd_v15" in text and "original_mm" in text

    args = parser.parse_args(["models", "verify", "tiny-sd15", "zoom_in", "--models-dir", str(zoo)])
    out = io.StringIO()
    assert models_cli.verify_command(args.targets, config_dirs=args.models_dir, out=out) == 0
    assert out.getvalue().count("ok") == 2

    err = io.StringIO()
    status = models_cli.verify_command([str(tmp_path / "gone.safetensors")], out=io.StringIO(), err=err)
    assert status == 2 and "gone.safetensors" in err.getvalue()
    err = io.StringIO()
    status = models_cli.verify_command(["ghibli_style"], kind="checkpoint", config_dirs=[zoo],
                                       out=io.StringIO(), err=err)
    assert status == 2 and "expected a checkpoint" in err.getvalue()
