"""The AnimateDiff generator on tiny models (CPU, fp32, no weights, no network)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lofid.generators import animatediff as ad
from lofid.generators.animatediff import context_windows
from lofid.scene import SceneSpec

sys.path.insert(0, str(Path(__file__).parent))

from helpers import Lazy, needs  # noqa: E402

torch = Lazy("torch")
pytestmark = needs("torch", "diffusers")

SIZE = (32, 32)   # 4x4 latents in the tiny models: the cheapest size that runs the whole UNet


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models are all overhead: one thread avoids idle spinning between ops on a
    shared CI machine (several times faster here), and restores the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from tiny_models import tiny_pipeline

    return tiny_pipeline(tmp_path_factory.mktemp("animatediff"))


@pytest.fixture
def fresh(pipe):
    """The shared tiny pipeline with its scheduler restored after the test."""
    scheduler = pipe.scheduler
    yield pipe
    pipe.scheduler = scheduler


# --------------------------------------------------------------------------- windows

def _coverage(windows, n):
    c = Counter(i for w in windows for i in w)
    return [c[i] for i in range(n)]


@pytest.mark.parametrize("n, context, stride", [
    (48, 16, 8), (48, 16, 4), (24, 16, 8), (18, 16, 8), (17, 16, 8), (32, 16, 8), (20, 8, 3)])
def test_windows_cover_every_frame_equally_at_every_step(n, context, stride):
    for step in range(12):
        windows = context_windows(n, context, stride, step)
        cov = _coverage(windows, n)
        assert len(set(cov)) == 1 and cov[0] >= 1, (step, cov)
        for w in windows:
            assert len(w) == context
            # consecutive frames modulo n: the last frame neighbours the first
            assert all((b - a) % n == 1 for a, b in zip(w, w[1:]))


def test_48_frames_in_16_frame_windows():
    windows = context_windows(48, 16, 8, 0)
    assert windows[0] == list(range(16))
    assert len(windows) == 6                        # starts every 8 frames
    assert _coverage(windows, 48) == [2] * 48       # each frame seen twice per step
    assert any(w[-1] < w[0] for w in windows)       # some window runs over the loop point


def test_windows_wrap_around_the_loop_point():
    for step in range(8):
        windows = context_windows(24, 16, 8, step)
        # at every step some window holds the last frame right before the first
        assert any(any(a == 23 and b == 0 for a, b in zip(w, w[1:])) for w in windows)


def test_windows_shift_between_steps():
    for n, context, stride in [(48, 16, 8), (16, 16, 8), (8, 16, 8)]:
        seen = [tuple(map(tuple, context_windows(n, context, stride, s))) for s in range(4)]
        assert all(a != b for a, b in zip(seen, seen[1:])), (n, context)
        # the offsets cycle through every position of the spacing
        starts = {context_windows(n, context, stride, s)[0][0] % ad.window_spacing(n, context, stride)
                  for s in range(16)} if n > context else set()
        if n > context:
            assert starts == set(range(ad.window_spacing(n, context, stride)))


def test_short_clip_is_one_window_of_all_frames_in_order():
    assert context_windows(8, 16, 8, 0) == [list(range(8))]
    for step in range(10):
        (w,) = context_windows(8, 16, 8, step)
        assert sorted(w) == list(range(8))
        assert all((b - a) % 8 == 1 for a, b in zip(w, w[1:]))
    # the loop point moves: over the steps the window starts at many frames
    assert len({context_windows(8, 16, 8, s)[0][0] for s in range(8)}) == 8


@pytest.mark.parametrize("args, name", [((0, 16, 8, 0), "n_frames"), ((8, 1, 8, 0), "context"),
                                        ((8, 16, 0, 0), "stride"), ((8, 16, 8, -1), "step")])
def test_windows_refuse_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        context_windows(*args)


# --------------------------------------------------------------------------- circularity

def _denoise(pipe, noise, context, stride, steps=2, guidance=2.0):
    pipe.scheduler = ad.make_scheduler("ddim", pipe.scheduler.config)
    pipe.scheduler.set_timesteps(steps)
    with torch.inference_mode():
        cond, uncond = ad.encode(pipe, "a cozy room", "blurry", True, "cpu")
        return ad.denoise_circular(pipe, noise.clone(), cond, uncond, pipe.scheduler.timesteps,
                                   guidance, context, stride, window_batch=4)


def test_rolled_noise_gives_the_rolled_loop(fresh):
    """The circle has no start: rolling the initial noise by k frames rolls the result
    by k, for k a multiple of the window spacing (then each step's set of windows maps
    onto itself, so every frame sees exactly the same neighbours and the same
    computation). The difference left is float32 rounding from summing the same window
    predictions in another order (about 1e-7 relative per step); 1e-4 leaves room for
    that over the steps, while the plain sequence below misses by orders of magnitude."""
    n, context, stride, k = 8, 4, 2, 2
    noise = torch.randn(1, 4, n, 4, 4, generator=torch.Generator().manual_seed(3))
    out = _denoise(fresh, noise, context, stride)
    rolled = _denoise(fresh, torch.roll(noise, k, dims=2), context, stride)
    diff = (torch.roll(out, k, dims=2) - rolled).abs().max().item()
    assert diff < 1e-4, diff
    # the motion module does mix frames: without it, any method would pass
    plain = _denoise(fresh, noise, n, n)
    plain_rolled = _denoise(fresh, torch.roll(noise, k, dims=2), n, n)
    # one window of all n frames: both runs use the same windows, so the rolled noise
    # sits at other positions of the motion module and the output is not the rolled one
    assert (torch.roll(plain, k, dims=2) - plain_rolled).abs().max().item() > 100 * 1e-4


# --------------------------------------------------------------------------- end to end

def test_generate_returns_a_loop(fresh):
    calls = []
    loop = ad.generate(SceneSpec(), 7, SIZE, 8, 10, progress=lambda d, t: calls.append((d, t)),
                       pipeline=fresh, steps=3, guidance=2.0, context=4)
    assert loop.frames.shape == (8, 32, 32, 3) and loop.frames.dtype == np.uint8
    assert loop.generator == "animatediff" and loop.fps == 10 and loop.seed == 7
    assert loop.spec == SceneSpec()
    for key, value in {"steps": 3, "guidance": 2.0, "scheduler": "ddim",
                       "loop_method": "circular", "context": 4, "loras": [],
                       "motion_loras": []}.items():
        assert loop.params[key] == value, key
    assert np.isfinite(loop.metrics["seam_ratio"]) and loop.metrics["seam_ratio"] > 0
    assert calls == [(1, 3), (2, 3), (3, 3)]
    # seeded: the same seed gives the same loop, another seed another one
    again = ad.generate(SceneSpec(), 7, SIZE, 8, 10, pipeline=fresh, steps=3, guidance=2.0,
                        context=4)
    assert np.array_equal(again.frames, loop.frames)


def test_wide_sizes_whose_latents_do_not_halve_evenly(fresh):
    # 48x24 px -> 6x3 latents: like 768x432 (96x54 latents) the UNet must upsample to
    # odd sizes
    loop = ad.generate(SceneSpec(), 1, (48, 24), 8, 8, pipeline=fresh, steps=1, guidance=1.0,
                       context=8)
    assert loop.frames.shape == (8, 24, 48, 3) and (loop.width, loop.height) == (48, 24)


@pytest.mark.parametrize("scheduler", ["euler", "lcm"])
def test_few_step_schedulers_run(fresh, scheduler):
    calls = []
    loop = ad.generate(SceneSpec(), 1, SIZE, 8, 8, progress=lambda d, t: calls.append(d),
                       pipeline=fresh, steps=2, guidance=1.0, scheduler=scheduler, context=8)
    assert loop.frames.shape == (8, 32, 32, 3)
    assert loop.params["scheduler"] == scheduler
    assert calls == [1, 2]
    assert type(fresh.scheduler).__name__ == {"euler": "EulerDiscreteScheduler",
                                              "lcm": "LCMScheduler"}[scheduler]
    assert fresh.scheduler.config.beta_schedule == "linear"


def test_ddim_scheduler_is_animatediff_safe(fresh):
    s = ad.make_scheduler("ddim", fresh.scheduler.config)
    assert (type(s).__name__, s.config.beta_schedule, s.config.clip_sample,
            s.config.steps_offset) == ("DDIMScheduler", "linear", False, 1)
    e = ad.make_scheduler("euler", fresh.scheduler.config)
    assert e.config.timestep_spacing == "trailing"


def test_plain_pipeline_then_pixel_crossfade(fresh):
    calls = []
    loop = ad.generate(SceneSpec(), 2, SIZE, 8, 8, progress=lambda d, t: calls.append((d, t)),
                       pipeline=fresh, steps=2, guidance=2.0, loop_method="none")
    assert calls == [(1, 2), (2, 2)]
    assert loop.frames.shape == (8, 32, 32, 3)   # the crossfade's frames were made extra
    assert loop.params["loop_method"] == "none"
    assert np.isfinite(loop.metrics["seam_ratio"])


# --------------------------------------------------------------------------- memory

def test_out_of_memory_retries_smaller_and_says_so(fresh, monkeypatch):
    forward = fresh.unet.forward
    failures = []

    def flaky(*args, **kwargs):
        if not failures:
            failures.append(args[0].shape)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(*args, **kwargs)

    monkeypatch.setattr(fresh.unet, "forward", flaky)
    events, calls = [], []
    loop = ad.generate(SceneSpec(), 1, SIZE, 8, 8, progress=lambda d, t: calls.append(d),
                       pipeline=fresh, steps=2, guidance=1.0, context=8,
                       events=lambda name, info: events.append((name, info)))
    assert failures and failures[0][2] == 8                  # the first try had 8-frame windows
    assert fresh.unet.forward is flaky
    assert loop.frames.shape == (8, 32, 32, 3)
    assert loop.params["context"] == 4
    assert loop.params["memory_fallbacks"] == ["context windows of 4 frames"]
    assert [name for name, _ in events] == ["oom_retry"]
    assert "out of memory" in events[0][1]["error"]
    assert calls == [0, 1, 2]                                # restarted, then each step


def test_out_of_memory_at_the_smallest_setting_is_raised(fresh, monkeypatch):
    def always(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(fresh.unet, "forward", always)
    events = []
    with pytest.raises(torch.cuda.OutOfMemoryError):
        ad.generate(SceneSpec(), 1, SIZE, 8, 8, pipeline=fresh, steps=2, guidance=1.0,
                    context=8, events=lambda name, info: events.append(info["retry_with"]))
    assert events == ["context windows of 4 frames", "VAE decode one frame at a time"]


def test_memory_plan_follows_free_vram():
    roomy = ad.plan_memory(80 * ad.GiB, 512, 512, 24, 16, True)
    assert not roomy.cpu_offload and roomy.window_batch > 1
    # a few frames per VAE call fill a GPU; more would only raise the peak
    assert roomy.decode_chunk == ad.DECODE_CHUNK_MAX
    tight = ad.plan_memory(4 * ad.GiB, 512, 512, 24, 16, True)
    assert tight.cpu_offload and tight.window_batch == 1 and tight.decode_chunk < 16
    cpu = ad.plan_memory(None, 512, 512, 24, 16, True)
    assert not cpu.cpu_offload and cpu.window_batch == 3   # 24 frames: 3 windows of 16


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, words", [
    (dict(size=(30, 32)), "width"), (dict(size=(32, 36)), "height"),
    (dict(frames=1), "frames"), (dict(scheduler="dpm"), "scheduler"),
    (dict(loop_method="pingpong"), "loop_method"), (dict(steps=0), "steps"),
    (dict(context=1), "context"), (dict(fps=0), "fps"), (dict(guidance=-1), "guidance")])
def test_bad_inputs_are_refused_by_name(kwargs, words):
    args = dict(spec=SceneSpec(), seed=0, size=SIZE, frames=8, fps=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        ad.generate(pipeline=object(), **args)


def test_without_weights_or_pipeline_it_says_what_is_missing():
    with pytest.raises(ValueError, match="model"):
        ad.generate(SceneSpec(), 0, SIZE, 8, 8)


def test_context_longer_than_the_motion_module_is_refused(fresh):
    with pytest.raises(ValueError, match="context"):
        ad.generate(SceneSpec(), 0, SIZE, 8, 8, pipeline=fresh, context=64)


# --------------------------------------------------------------------------- bench

def test_bench_runs_at_tiny_size(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "bench"))
    import gpu_generate

    gpu_generate.main(["--tiny"])
    out = capsys.readouterr().out
    assert "16 frames" in out and "few-step" in out and "circular" in out


# --------------------------------------------------------------------------- presets, availability

def test_few_step_presets():
    for name, scheduler in (("lcm", "lcm"), ("lightning", "euler")):
        options = ad.preset_options(name)
        assert options["scheduler"] == scheduler
        assert 4 <= options["steps"] <= 8 and 1.0 <= options["guidance"] <= 2.0
    with pytest.raises(ValueError, match="preset"):
        ad.preset_options("turbo")


def test_available_needs_weights_and_a_gpu(monkeypatch):
    import types

    import lofid

    class Ref:
        def __init__(self, kind):
            self.kind = kind

    fake = types.SimpleNamespace(list_models=lambda config_dirs=None: [Ref("checkpoint"),
                                                                       Ref("motion_adapter")])
    monkeypatch.setitem(sys.modules, "lofid.models", fake)
    monkeypatch.setattr(lofid, "models", fake, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ad.available() is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ad.available() is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    fake.list_models = lambda config_dirs=None: [Ref("checkpoint")]
    assert ad.available() is False


def test_generate_from_model_folders(tmp_path_factory):
    """The user's way: weights by path, found and loaded through lofid.models; the
    second loop from the same weights reuses the loaded pipeline."""
    from tiny_models import tiny_motion_adapter_dir, tiny_pipeline_dir

    tmp = tmp_path_factory.mktemp("weights")
    model, adapter = tiny_pipeline_dir(tmp), tiny_motion_adapter_dir(tmp)
    try:
        loop = ad.generate(SceneSpec(), 3, SIZE, 8, 8, model=str(model),
                           motion_adapter=str(adapter), steps=2, guidance=1.0, context=8)
        assert loop.frames.shape == (8, 32, 32, 3)
        assert loop.params["model"] and loop.params["motion_adapter"]
        (cached,) = ad.loaded_pipelines()
        again = ad.generate(SceneSpec(), 3, SIZE, 8, 8, model=str(model),
                            motion_adapter=str(adapter), steps=2, guidance=1.0, context=8)
        assert [id(p) for p in ad.loaded_pipelines()] == [id(cached)]   # kept, not reloaded
        assert np.array_equal(again.frames, loop.frames)
    finally:
        ad.unload()


def test_run_asks_for_loops_near_the_models_size_and_at_most_48_frames():
    """The loop shape `lofid run` asks AnimateDiff for, from the output's size: 768 px
    wide in the output's aspect (the player scales it up), sides a multiple of 8 and
    at least 64, and no more than 48 frames."""
    assert ad.loop_shape((1920, 1080), 120) == ((768, 432), 48)
    assert ad.loop_shape((1280, 720), 24) == ((768, 432), 24)
    assert ad.loop_shape((720, 1280), 48) == ((768, 1368), 48)
    (w, h), n = ad.loop_shape((1000, 333), 60)
    assert (w, h, n) == (768, 256, 48)
    assert ad.loop_shape((4000, 64), 8) == ((768, 64), 8)
