"""Loop record, loop metrics, loop closing, PNG and contact sheets."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from PIL import Image

from lofid.export import contact_sheet, write_png
from lofid.loop import (
    Loop,
    close_loop,
    compute_metrics,
    flicker,
    mean_motion,
    seam_ratio,
)


class Spec:
    """Stands in for a SceneSpec: Loop only needs .to_dict() and .id."""

    def __init__(self, scene="study_room"):
        self.scene = scene

    def to_dict(self):
        return {"scene": self.scene, "motions": ("rain",)}

    @property
    def id(self):
        return f"id-{self.scene}"


def periodic_clip(n=24, h=48, w=64):
    """Smooth colours drifting one full period over n frames: loops by construction."""
    t = np.arange(n)[:, None, None] * (2 * np.pi / n)
    y = np.arange(h)[None, :, None]
    x = np.arange(w)[None, None, :]
    r = 128 + 90 * np.sin(2 * np.pi * x / w + t)
    g = 120 + 60 * np.cos(2 * np.pi * y / h - t) + 0 * x
    b = 90 + 40 * np.sin(2 * np.pi * (x + y) / (w + h) + 2 * t)
    return np.stack(np.broadcast_arrays(r, g, b), -1).round().astype(np.uint8)


def panning_clip(n=24, h=48, w=64, speed=2):
    """A textured gradient panning one way: every step alike, but it never comes back."""
    rng = np.random.default_rng(1)
    width = w + speed * n
    base = np.linspace(20, 230, width)[None, :] + rng.normal(0, 12, (h, width))
    picture = np.stack([base, base * 0.8 + 20, 255 - base], -1).clip(0, 255)
    frames = np.stack([picture[:, speed * i:speed * i + w] for i in range(n)])
    return frames.round().astype(np.uint8)


def brightening_clip(n=24, h=48, w=64):
    """A picture getting steadily brighter (a sunrise that never sets)."""
    x = np.linspace(0, 60, w)[None, None, :, None]
    level = 20 + 8 * np.arange(n)[:, None, None, None]
    return np.broadcast_to(level + x, (n, h, w, 3)).round().astype(np.uint8)


def random_walk_clip(n=24, h=48, w=64):
    """Every pixel wanders on its own: steps of the same size, a drift that stays."""
    rng = np.random.default_rng(7)
    walk = 128 + np.cumsum(rng.normal(0, 3, (n, h, w, 3)), axis=0)
    return walk.clip(0, 255).round().astype(np.uint8)


def grey_frames(levels, h=8, w=8):
    return np.stack([np.full((h, w, 3), v, np.uint8) for v in levels])


def make_loop(frames=None, **kw):
    args = dict(frames=periodic_clip() if frames is None else frames, fps=12, spec=Spec(),
                seed=3, generator="procedural", params={"size": (64, 48)})
    args.update(kw)
    return Loop(**args)


# --------------------------------------------------------------------------- Loop

def test_loop_fills_in_metrics_time_and_sizes():
    before = time.time()
    loop = make_loop()
    assert (loop.n_frames, loop.width, loop.height) == (24, 64, 48)
    assert loop.duration == pytest.approx(2.0)
    assert set(loop.metrics) == {"seam_ratio", "motion", "flicker"}
    assert loop.metrics["seam_ratio"] < 1.1
    assert before <= loop.created <= time.time()
    assert "24 frames 64x48" in repr(loop)


def test_loop_keeps_given_metrics_and_time():
    metrics = {"seam_ratio": 1.5, "motion": 2.0, "flicker": 0.25}
    loop = make_loop(metrics=metrics, created=1000.0)
    assert loop.metrics == metrics
    assert loop.created == 1000.0


@pytest.mark.parametrize("frames, message", [
    (periodic_clip().astype(np.float32), "dtype uint8.*float32"),
    (periodic_clip()[..., 0], r"shape \(N, H, W, 3\).*\(24, 48, 64\)"),
    (np.zeros((4, 8, 8, 4), np.uint8), r"shape \(N, H, W, 3\).*\(4, 8, 8, 4\)"),
    (np.zeros((1, 8, 8, 3), np.uint8), "at least 2 frames, got 1"),
    ([[[[0, 0, 0]]]], "numpy array.*list"),
])
def test_loop_refuses_bad_frames(frames, message):
    with pytest.raises(ValueError, match=message):
        make_loop(frames=frames)


@pytest.mark.parametrize("fps", [0, -12, float("nan"), float("inf"), "12", True])
def test_loop_refuses_bad_fps(fps):
    with pytest.raises(ValueError, match="fps"):
        make_loop(fps=fps)


@pytest.mark.parametrize("field, value, message", [
    ("spec", None, "spec.*NoneType"),
    ("seed", "7", "seed must be an integer, got '7'"),
    ("generator", "", "generator must be a non-empty name"),
    ("params", [1], "params must be a dict"),
    ("metrics", {"seam_ratio": 1.0}, "lack motion, flicker"),
])
def test_loop_refuses_bad_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        make_loop(**{field: value})


def test_metadata_is_strict_json_and_rebuilds_the_loop():
    loop = make_loop(seed=np.int64(9), created=1234.5)
    meta = loop.metadata()
    text = json.dumps(meta, allow_nan=False)
    back = json.loads(text)
    assert back["spec"] == {"scene": "study_room", "motions": ["rain"]}
    assert back["spec_id"] == "id-study_room"
    assert back["params"] == {"size": [64, 48]}
    assert (back["n_frames"], back["width"], back["height"], back["fps"]) == (24, 64, 48, 12.0)
    assert "frames" not in back

    again = Loop.from_metadata(back, loop.frames, Spec())
    assert again.metrics == loop.metrics
    assert (again.seed, again.generator, again.fps) == (9, "procedural", 12.0)
    assert again.created == 1234.5
    assert again.params == {"size": [64, 48]}


def test_metadata_writes_infinite_seam_ratio_as_null_and_reads_it_back():
    loop = make_loop(frames=grey_frames([50, 50, 50, 90]))
    assert loop.metrics["seam_ratio"] == math.inf
    meta = json.loads(json.dumps(loop.metadata(), allow_nan=False))
    assert meta["metrics"]["seam_ratio"] is None
    assert Loop.from_metadata(meta, loop.frames, Spec()).metrics["seam_ratio"] == math.inf


def test_from_metadata_refuses_frames_that_do_not_match():
    loop = make_loop()
    with pytest.raises(ValueError, match="n_frames is 12, metadata says 24"):
        Loop.from_metadata(loop.metadata(), loop.frames[:12], Spec())
    with pytest.raises(ValueError, match="lacks fps"):
        Loop.from_metadata({"seed": 1, "generator": "x"}, loop.frames, Spec())


def test_metadata_refuses_params_that_are_not_json():
    loop = make_loop(params={"callback": object()})
    with pytest.raises(ValueError, match=r"params\['callback'\] must be JSON-able"):
        loop.metadata()


# --------------------------------------------------------------------------- metrics

def test_known_steps_give_known_metrics():
    # grey 10 -> 20 -> 30 -> 20 -> (10): every step 10 levels, the seam included
    frames = grey_frames([10, 20, 30, 20])
    assert seam_ratio(frames) == pytest.approx(1.0)
    assert mean_motion(frames) == pytest.approx(10.0)
    assert flicker(frames) == pytest.approx(10.0)


def test_periodic_clip_has_a_seamless_seam():
    m = compute_metrics(periodic_clip())
    assert 0.9 <= m["seam_ratio"] <= 1.1
    assert m["motion"] > 5


@pytest.mark.parametrize("clip, at_least", [
    (panning_clip, 4.0), (brightening_clip, 15.0), (random_walk_clip, 3.0)])
def test_clips_that_do_not_loop_have_a_large_seam_ratio(clip, at_least):
    assert seam_ratio(clip()) >= at_least


def test_static_clip_loops_perfectly():
    m = compute_metrics(grey_frames([77] * 6))
    # identical frames: every difference is exactly 0, and 0/0 is defined as 1.0
    assert m == {"seam_ratio": 1.0, "motion": 0.0, "flicker": 0.0}


def test_static_clip_that_jumps_at_the_seam_is_infinitely_bad():
    assert seam_ratio(grey_frames([77, 77, 77, 100])) == math.inf


def test_flicker_sees_brightness_not_motion():
    # a pan keeps overall brightness; a blinking lamp does not
    moving = compute_metrics(periodic_clip())
    blinking = compute_metrics(grey_frames([100, 130] * 6))
    assert moving["flicker"] < 1.0
    assert blinking["flicker"] == pytest.approx(30.0)


def test_sampled_metrics_match_full_resolution_on_video_sizes():
    # 1280x720 is read on a grid; the estimate must stay close to the exact value
    small = panning_clip(n=6, h=90, w=160, speed=1)
    frames = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)
    frames = (frames.astype(np.int16) + np.random.default_rng(3).integers(-6, 7, frames.shape))
    frames = frames.clip(0, 255).astype(np.uint8)
    wide = frames.astype(np.int16)
    steps = [np.abs(wide[i + 1] - wide[i]).mean() for i in range(len(wide) - 1)]
    exact_motion = float(np.median(steps))
    exact_seam = np.abs(wide[0] - wide[-1]).mean() / exact_motion
    m = compute_metrics(frames)
    assert m["motion"] == pytest.approx(exact_motion, rel=0.03)
    assert m["seam_ratio"] == pytest.approx(exact_seam, rel=0.03)


def test_metrics_are_cheap_on_video_sized_loops():
    # 24 frames of 1280x720; the full 120-frame budget is a fraction of a second
    tile = np.random.default_rng(0).integers(0, 256, (24, 90, 160, 3), dtype=np.uint8)
    frames = np.tile(tile, (1, 8, 8, 1))
    start = time.process_time()
    compute_metrics(frames)
    assert time.process_time() - start < 0.5


# --------------------------------------------------------------------------- close_loop

@pytest.mark.parametrize("clip", [panning_clip, brightening_clip, random_walk_clip])
def test_close_loop_makes_clips_loop(clip):
    frames = clip()
    before = seam_ratio(frames)
    closed = close_loop(frames)
    assert closed.dtype == np.uint8 and closed.shape[1:] == frames.shape[1:]
    assert len(closed) == 24 - 6          # default overlap: a quarter of 24
    assert before > 3
    assert seam_ratio(closed) <= 1.1


def test_close_loop_keeps_the_middle_and_blends_the_head():
    frames = brightening_clip()
    closed = close_loop(frames, overlap=4)
    assert len(closed) == 20
    np.testing.assert_array_equal(closed[4:], frames[4:20])                # copied
    # the new loop point is the clip's own step from frame 19 to frame 20 (its weight is
    # 256/256 in close_loop's integer blend: exact)
    np.testing.assert_array_equal(closed[0], frames[20])
    # brightness eases from the tail's back to the head's, monotonically
    levels = closed[:5].mean(axis=(1, 2, 3))
    assert np.all(np.diff(levels) < 0)


def test_close_loop_keeps_a_looping_clip_looping():
    closed = close_loop(periodic_clip(), overlap=3)
    assert seam_ratio(closed) <= 1.1


@pytest.mark.parametrize("overlap, message", [
    (0, "between 2 and 11 frames for 24 frames, got 0"),
    (12, "between 2 and 11 frames for 24 frames, got 12"),
    (2.5, "whole number of frames, got 2.5"),
])
def test_close_loop_refuses_bad_overlap(overlap, message):
    with pytest.raises(ValueError, match=message):
        close_loop(periodic_clip(), overlap=overlap)


def test_close_loop_refuses_too_short_clips():
    with pytest.raises(ValueError, match="at least 5 frames.*got 4"):
        close_loop(grey_frames([1, 2, 3, 4]))


# --------------------------------------------------------------------------- pictures

def test_write_png_round_trips(tmp_path):
    frame = periodic_clip()[5]
    path = write_png(frame, tmp_path / "frame.png")
    assert path == tmp_path / "frame.png"
    np.testing.assert_array_equal(np.asarray(Image.open(path)), frame)
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]


def test_write_png_refuses_a_clip(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        write_png(periodic_clip(), tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_contact_sheet_lays_frames_out_in_a_grid():
    frames = periodic_clip(n=10)
    sheet = contact_sheet(frames, columns=4, gap=2)
    # 4 columns x 3 rows of 64x48 tiles, 2 px apart
    assert sheet.shape == (3 * 48 + 2 * 2, 4 * 64 + 3 * 2, 3)
    np.testing.assert_array_equal(sheet[:48, :64], frames[0])
    np.testing.assert_array_equal(sheet[50:98, 66:130], frames[5])
    # the last row's empty cells are background
    assert (sheet[100:, 132:] == sheet[48, 0]).all()


def test_contact_sheet_scales_down_to_max_width():
    frames = periodic_clip(n=16, h=90, w=160)
    sheet = contact_sheet(frames, max_width=300)
    assert sheet.shape[1] <= 300
    assert sheet.shape[0] < sheet.shape[1]          # 4x4 grid of landscape tiles
    with pytest.raises(ValueError, match="columns must be a whole number >= 1, got 0"):
        contact_sheet(frames, columns=0)
    with pytest.raises(ValueError, match="max_width 3 is too small"):
        contact_sheet(frames, max_width=3)


def test_metadata_round_trips_with_a_real_scene_spec():
    # what the library does: JSON on disk, the spec rebuilt with SceneSpec.from_dict
    scene = pytest.importorskip("lofid.scene")
    spec = scene.parse("rainy night, coffee shop")
    loop = make_loop(spec=spec)
    meta = json.loads(json.dumps(loop.metadata(), allow_nan=False))
    assert meta["spec_id"] == spec.id
    again = Loop.from_metadata(meta, loop.frames, scene.SceneSpec.from_dict(meta["spec"]))
    assert again.spec == spec
    assert again.metadata() == meta
