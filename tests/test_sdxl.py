"""The SDXL model family: detection, loading and circular generation on tiny SDXL models
(CPU, fp32, no weights, no network)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_models as T  # noqa: E402
from lofid import models as M  # noqa: E402
from lofid.generators import animatediff as ad  # noqa: E402
from lofid.scene import SceneSpec  # noqa: E402

from helpers import Lazy, needs, save_file  # noqa: E402

torch = Lazy("torch")
pytestmark = needs("torch", "diffusers")

SIZE = (64, 64)   # 8x8 latents: the tiny SDXL UNet's three levels go 8 -> 4 -> 2


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models are all overhead: one thread is faster on a shared CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    d = tmp_path_factory.mktemp("sdxl-zoo")
    T.tiny_sdxl_pipeline_dir(d)
    T.tiny_sdxl_motion_adapter_dir(d)
    T.tiny_pipeline_dir(d)
    T.tiny_motion_adapter_dir(d)
    return d


@pytest.fixture(scope="module")
def pipe(zoo):
    p = M.load_pipeline(M.describe(zoo / "tiny-sdxl"), M.describe(zoo / "tiny-motion-adapter-sdxl"),
                        "cpu", torch.float32)
    p.set_progress_bar_config(disable=True)
    return p


# --------------------------------------------------------------------------- detection

def test_family_of_folders(zoo):
    assert M.checkpoint_family(zoo / "tiny-sdxl") == "sdxl"
    assert M.checkpoint_family(zoo / "tiny-sd15") == "sd15"
    ref = M.describe(zoo / "tiny-sdxl")
    assert (ref.kind, ref.format) == ("checkpoint", "diffusers")
    assert M.verify(ref) == []
    assert M.verify(M.describe(zoo / "tiny-motion-adapter-sdxl")) == []


def test_family_of_a_folder_from_its_unet_alone(tmp_path, zoo):
    """A folder whose model_index lacks text_encoder_2 is still SDXL when its UNet is
    conditioned on text_time; verify then names the missing second encoder."""
    import json
    import shutil

    d = tmp_path / "partial-sdxl"
    shutil.copytree(zoo / "tiny-sdxl", d)
    index = json.loads((d / "model_index.json").read_text())
    del index["text_encoder_2"]
    (d / "model_index.json").write_text(json.dumps(index))
    assert M.checkpoint_family(d) == "sdxl"
    problems = M.verify(M.describe(d))
    assert any("text_encoder_2" in p for p in problems), problems


def test_family_of_single_files_from_their_headers(tmp_path):
    """SDXL single files hold their two text encoders under conditioner.embedders.0/1."""
    conv = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(32, 4, 3, 3),
            "first_stage_model.encoder.conv_in.weight": torch.zeros(32, 3, 3, 3)}
    xl = tmp_path / "tiny-xl.safetensors"
    save_file({**conv,
               "conditioner.embedders.0.transformer.text_model.embeddings.position_ids": torch.zeros(1, 77),
               "conditioner.embedders.1.model.text_projection": torch.zeros(32, 32)}, str(xl))
    sd15 = tmp_path / "tiny-15.safetensors"
    save_file({**conv, "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.zeros(1, 77)},
              str(sd15))
    assert M.checkpoint_family(xl) == "sdxl"
    assert M.checkpoint_family(sd15) == "sd15"
    assert M.describe(xl).kind == "checkpoint"
    # an SDXL file is a valid checkpoint, not one missing its text encoder
    assert M.verify(M.describe(xl)) == []
    assert M.verify(M.describe(sd15)) == []


# --------------------------------------------------------------------------- loading

def test_load_pipeline_gives_the_sdxl_pipeline(pipe):
    assert type(pipe).__name__ == "AnimateDiffSDXLPipeline"
    assert type(pipe.unet).__name__ == "UNetMotionModel"
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert ad.is_sdxl(pipe)


def test_the_motion_unet_keeps_the_checkpoints_sdxl_embedding(zoo, pipe):
    """Every UNet weight of the checkpoint reaches the motion UNet, including SDXL's
    add_embedding (pooled text + size conditioning), which diffusers' from_unet2d
    leaves at random values."""
    from diffusers import UNet2DConditionModel

    source = UNet2DConditionModel.from_pretrained(zoo / "tiny-sdxl", subfolder="unet").state_dict()
    loaded = pipe.unet.state_dict()
    assert any(k.startswith("add_embedding.") for k in source)
    different = [k for k, v in source.items() if not torch.equal(loaded[k], v)]   # copies: exact
    assert different == []


def test_single_file_sdxl_checkpoint_loads_the_same_weights(zoo, pipe):
    path = T.tiny_sdxl_checkpoint_file(zoo)
    ref = M.describe(path)
    assert (ref.kind, ref.format) == ("checkpoint", "single_file")
    assert M.checkpoint_family(path) == "sdxl" and M.verify(ref) == []
    # its configs and tokenizers come from the SDXL folder beside it (found by shape)
    single = M.load_pipeline(ref, M.describe(zoo / "tiny-motion-adapter-sdxl"), "cpu", torch.float32)
    assert type(single).__name__ == "AnimateDiffSDXLPipeline"
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        want, got = getattr(pipe, part).state_dict(), getattr(single, part).state_dict()
        assert [k for k, v in want.items() if k not in got or not torch.equal(got[k], v)] == [], part


@pytest.mark.parametrize("checkpoint, adapter, family", [
    ("tiny-sdxl", "tiny-motion-adapter", "SDXL"),
    ("tiny-sd15", "tiny-motion-adapter-sdxl", "SD1.5"),
])
def test_mixing_families_is_refused_naming_both_paths(zoo, checkpoint, adapter, family):
    with pytest.raises(M.ModelError) as e:
        M.load_pipeline(M.describe(zoo / checkpoint), M.describe(zoo / adapter), "cpu", torch.float32)
    msg = str(e.value)
    assert str(zoo / checkpoint) in msg and str(zoo / adapter) in msg
    assert f"expected an {family} motion adapter" in msg


# --------------------------------------------------------------------------- generation

def test_generate_runs_sdxl_in_circular_windows(pipe, monkeypatch):
    seen_windows = []
    real_windows = ad.context_windows

    def recording_windows(n, context, stride, step):
        w = real_windows(n, context, stride, step)
        seen_windows.append(w)
        return w

    unet_batches = []
    real_forward = pipe.unet.forward

    def recording_forward(sample, t, *args, **kwargs):
        added = kwargs.get("added_cond_kwargs") or {}
        unet_batches.append((sample.shape[0], sample.shape[2],
                             tuple(added.get("text_embeds", torch.zeros(0)).shape),
                             tuple(added.get("time_ids", torch.zeros(0)).shape)))
        return real_forward(sample, t, *args, **kwargs)

    monkeypatch.setattr(ad.pipeline, "context_windows", recording_windows)  # denoise_circular's
    monkeypatch.setattr(pipe.unet, "forward", recording_forward)
    steps = []
    loop = ad.generate(SceneSpec(), 3, SIZE, 8, 8, progress=lambda d, t: steps.append((d, t)),
                       pipeline=pipe, steps=2, context=4, guidance=7.5)
    assert loop.frames.shape == (8, 64, 64, 3) and loop.frames.dtype == np.uint8
    assert loop.params["context"] == 4 and loop.params["loop_method"] == "circular"
    assert steps == [(1, 2), (2, 2)]
    # windows of 4 consecutive frames modulo 8, some running over the loop point,
    # shifting between the two steps
    denoised = seen_windows[-2:]   # the memory plan asks for step 0's windows first
    assert denoised[0] != denoised[1]
    for windows in denoised:
        assert all(len(w) == 4 for w in windows)
        assert any(w[-1] < w[0] for w in windows)
    # every UNet call got one pooled-text row and one time-ids row per window and
    # guidance half (the UNet repeats them per frame itself)
    assert unet_batches
    for batch, frames, text, ids in unet_batches:
        assert frames == 4
        assert text == (batch, T.SDXL_TEXT_DIM) and ids == (batch, 6)
    # frames differ from one another: real pictures, not one repeated
    assert np.abs(loop.frames[0].astype(int) - loop.frames[4].astype(int)).mean() > 0


def test_one_window_one_step_matches_the_sdxl_pipeline(pipe):
    """With the whole clip in one window that starts at frame 0 (step 0), the circular
    denoiser makes the same UNet calls as diffusers' own SDXL loop: pooled embeddings,
    time ids and the uncond/cond order must all agree for the results to match.
    Euler with trailing timesteps: its one step starts at t=999, where the prediction
    decides the result (DDIM's one step would sit at t=0, where it hardly counts)."""
    pipe.scheduler = ad.make_scheduler("euler", pipe.scheduler.config)
    spec = SceneSpec()
    w, h = SIZE
    with torch.inference_mode():
        c = ad.conditioning(pipe, spec.prompt(), spec.negative_prompt(), True, "cpu", w, h)
        pipe.scheduler.set_timesteps(1)
        assert int(pipe.scheduler.timesteps[0]) == 999
        noise = ad.initial_noise(pipe, 5, 4, w, h, torch.float32, "cpu")
        ours = ad.denoise_circular(pipe, noise.clone(), c.cond, c.uncond, pipe.scheduler.timesteps,
                                   7.5, 4, 2, unet_kwargs=c.unet_kwargs)
        theirs = pipe(prompt_embeds=c.cond, negative_prompt_embeds=c.uncond, num_frames=4,
                      height=h, width=w, num_inference_steps=1, guidance_scale=7.5,
                      latents=noise.clone() / pipe.scheduler.init_noise_sigma,
                      output_type="latent", **c.call_kwargs).frames
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    # and the pooled conditioning matters: without it the UNet refuses to run
    with pytest.raises((TypeError, ValueError)):
        with torch.inference_mode():
            ad.denoise_circular(pipe, noise.clone(), c.cond, c.uncond, pipe.scheduler.timesteps,
                                7.5, 4, 2)


def test_generate_by_path_loads_the_sdxl_pair(zoo):
    try:
        loop = ad.generate(SceneSpec(), 1, SIZE, 6, 8, model=str(zoo / "tiny-sdxl"),
                           motion_adapter=str(zoo / "tiny-motion-adapter-sdxl"),
                           steps=1, context=4, guidance=1.0, device="cpu")
        assert loop.frames.shape == (6, 64, 64, 3)
        assert loop.params["model"] == "tiny-sdxl"
        assert [type(p).__name__ for p in ad.loaded_pipelines()] == ["AnimateDiffSDXLPipeline"]
    finally:
        ad.unload()


# --------------------------------------------------------------------------- decode, memory

def test_sdxl_decode_is_chunked_and_upcasts_an_fp16_vae(pipe):
    """SDXL's pipeline decodes all frames at once and its VAE overflows in fp16: lofid's
    decode chunks the frames and runs an fp16 VAE with force_upcast in fp32, leaving it
    in fp16 afterwards."""
    import copy
    from types import SimpleNamespace

    latents = torch.randn(1, 4, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = ad.decode(pipe, latents, 8)
        chunked = ad.decode(pipe, latents, 2)
        assert whole.shape == (1, 3, 5, 64, 64)
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-4)

        vae = copy.deepcopy(pipe.vae).to(torch.float16)
        assert vae.config.force_upcast
        half = SimpleNamespace(vae=vae, decode_latents=lambda latents: None)
        upcast = ad.decode(half, latents.half(), 2)
    assert vae.dtype == torch.float16
    assert upcast.dtype == torch.float32
    # fp32 decode of fp16-rounded latents: only the input rounding differs
    torch.testing.assert_close(upcast, whole, rtol=0, atol=2e-2)


def test_memory_plan_knows_sdxl_is_bigger():
    # 10 GiB free at 512x512: SD1.5's 3.2 GB of weights leave room, SDXL's 7.5 GB do not
    assert not ad.plan_memory(10 * ad.GiB, 512, 512, 16, 16, True, "sd15").cpu_offload
    assert ad.plan_memory(10 * ad.GiB, 512, 512, 16, 16, True, "sdxl").cpu_offload
    with pytest.raises(ValueError, match="family must be one of sd15, sdxl, got 'sd3'"):
        ad.plan_memory(10 * ad.GiB, 512, 512, 16, 16, True, "sd3")
