"""The procedural painter's loops: seamless, deterministic, and moving where they should."""

from __future__ import annotations

import numpy as np
import pytest

from lofid.generators import get, procedural
from lofid.generators.painter import paint
from lofid.loop import Loop, seam_ratio
from lofid.scene import MOTIONS, SCENES, SceneSpec, parse

SIZE = (160, 90)
N = 12
FPS = 12


def frames_of(spec, seed=1, size=SIZE, n=N, image=None):
    return procedural.animator(spec, seed, size, n, FPS, image=image).render()


def step_diff(frames) -> np.ndarray:
    """(H, W) mean abs difference between consecutive frames (cyclic), over channels."""
    f = frames.astype(np.int16)
    return np.abs(np.roll(f, -1, axis=0) - f).mean(axis=(0, 3))


def mask_of(rects, w, h) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in rects:
        m[max(y0, 0):y1, max(x0, 0):x1] = True
    return m


# --------------------------------------------------------------------------- loops

@pytest.mark.parametrize("scene", SCENES)
def test_every_scene_loops_seamlessly(scene):
    spec = parse(scene.replace("_", " "))
    assert spec.motions, "every scene has default motions"
    loop = procedural.generate(spec, 7, SIZE, 16, FPS)
    assert isinstance(loop, Loop)
    assert loop.frames.shape == (16, SIZE[1], SIZE[0], 3)
    assert loop.metrics["motion"] > 0.005, f"{scene} does not move"
    assert loop.metrics["seam_ratio"] <= 1.05
    assert seam_ratio(loop.frames) <= 1.05


@pytest.mark.parametrize("scene", SCENES)
def test_the_animation_is_periodic(scene):
    # continuing the animation one more frame gives back the first frame (exact: the
    # animator takes t modulo n first, so both are the same computation)
    anim = procedural.animator(parse(scene.replace("_", " ")), 3, SIZE, N, FPS)
    frames = anim.render()
    assert np.array_equal(anim.render_frame(N), frames[0])
    assert np.array_equal(anim.render_frame(N + 5), frames[5])
    assert np.array_equal(anim.render_frame(N - 1), frames[-1])


def test_every_scene_in_every_weather_loops_seamlessly():
    for extra in ("rain", "snow", "storm", "fog", "autumn night", "christmas"):
        for scene in SCENES:
            spec = parse(f"{scene.replace('_', ' ')} {extra}")
            anim = procedural.animator(spec, 2, (96, 54), 12, FPS)
            frames = anim.render()
            assert seam_ratio(frames) <= 1.05, (scene, extra)
            assert np.array_equal(anim.render_frame(12), frames[0]), (scene, extra)


def test_loop_record():
    spec = parse("coffee shop, rainy night")
    calls = []
    loop = get("procedural")(spec, 5, SIZE, N, FPS, progress=lambda d, t: calls.append((d, t)))
    assert loop.generator == "procedural"
    assert loop.spec == spec and loop.seed == 5 and loop.fps == FPS
    assert loop.params == {"size": list(SIZE), "frames": N, "fps": FPS, "painter": 1}
    assert calls == [(i, N) for i in range(1, N + 1)]
    meta = loop.metadata()
    assert meta["params"]["size"] == list(SIZE)
    assert meta["metrics"]["seam_ratio"] <= 1.05


def test_deterministic_and_seeded():
    spec = parse("rainy window at night")
    a = frames_of(spec, seed=11)
    b = frames_of(spec, seed=11)
    c = frames_of(spec, seed=12)
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 1.0


def test_no_motion_gives_a_still_loop():
    spec = SceneSpec(scene="study_room", motions=())
    frames = frames_of(spec)
    assert (frames == frames[0]).all()
    # the person is still in the picture when nothing moves: composited once
    painting = paint(spec, 1, *SIZE)
    f = painting.figure
    fh, fw = f.rgba.shape[:2]
    ys, xs = np.nonzero(f.rgba[..., 3] > 0.9)
    ys, xs = ys + f.y, xs + f.x
    inside = (ys < SIZE[1]) & (xs < SIZE[0])
    shown = frames[0][ys[inside], xs[inside]].astype(int)
    drawn = np.round(f.rgba[..., :3][ys[inside] - f.y, xs[inside] - f.x] * 255)
    assert np.abs(shown - drawn).mean() < 2.0


def test_scenes_are_distinct():
    firsts = [frames_of(parse(s.replace("_", " ")), n=2)[0].astype(int) for s in SCENES]
    for i in range(len(firsts)):
        for j in range(i + 1, len(firsts)):
            assert np.abs(firsts[i] - firsts[j]).mean() > 8.0, (SCENES[i], SCENES[j])


@pytest.mark.parametrize("size", [(96, 96), (160, 90), (128, 128), (256, 144)])
def test_square_and_wide_sizes(size):
    loop = procedural.generate(parse("bedroom night, rain"), 2, size, N, FPS)
    assert loop.frames.shape == (N, size[1], size[0], 3)
    assert loop.metrics["seam_ratio"] <= 1.05
    assert loop.metrics["motion"] > 0.005


def test_overlapping_motion_regions_all_reach_the_frame():
    from lofid.generators.painter.motions.frame import FrameBuffer
    bg = np.full((20, 30, 3), 100.5, np.float32)
    fb = FrameBuffer(bg)
    fb.region(0, 0, 12, 12)[...] += 10
    fb.region(6, 6, 20, 18)[...] += 20
    fb.region(8, 8, 10, 10)[...] += 5            # inside both
    out = np.full((20, 30, 3), 100, np.uint8)
    fb.finish(out)
    # sums of halves and small whole numbers are exact in float32 on any CPU
    expect = np.full((20, 30), 100)
    expect[0:12, 0:12] += 10
    expect[6:18, 6:20] += 20
    expect[8:10, 8:10] += 5
    assert (out[..., 0] == expect).all()
    assert (fb.work == bg).all()                # ready for the next frame


# --------------------------------------------------------------------------- each motion

def _cups(p):
    # steam rises above each cup: a box over it
    h = p.background.shape[0]
    return [(int(x - 0.1 * h), int(y - 0.3 * h), int(x + 0.1 * h), int(y)) for x, y, _ in p.cups]


def _lights(p):
    return [(int(L.x - 1.5 * L.radius) - 1, int(L.y - 1.5 * L.radius) - 1,
             int(L.x + 1.5 * L.radius) + 2, int(L.y + 1.5 * L.radius) + 2) for L in p.lights]


def _curtains(p):
    m = max(3, int(0.02 * p.background.shape[0]))
    return [(x0 - m, y0, x1 + m, y1) for x0, y0, x1, y1 in p.curtains]


def _figure(p):
    f = p.figure
    m = max(4, int(0.04 * f.rgba.shape[0]))
    return [(f.x - m, f.y - m, f.x + f.rgba.shape[1] + m, f.y + f.rgba.shape[0] + m)]


def _hair(p):
    f = p.figure
    ys, xs = np.nonzero(f.hair > 0.05)
    m = max(3, int(0.04 * f.rgba.shape[0]))
    return [(f.x + xs.min() - m, f.y + ys.min() - m, f.x + xs.max() + m, f.y + ys.max() + m)]


# motion -> (spec fields, where it must move)
ANCHORS = {
    "rain": (dict(scene="rainy_window", weather="rain"), lambda p: p.windows),
    "steam": (dict(scene="coffee_shop"), _cups),
    "flicker": (dict(scene="bedroom_night", time_of_day="night"), _lights),
    "curtain": (dict(scene="bedroom_night", time_of_day="night"), _curtains),
    "particles": (dict(scene="study_room", weather="snow"), lambda p: p.windows),
    "water_reflection": (dict(scene="rooftop_night", time_of_day="night"),
                         lambda p: p.reflections),
    "breathing": (dict(scene="study_room"), _figure),
    "hair_sway": (dict(scene="study_room"), _hair),
}


@pytest.mark.parametrize("motion", MOTIONS)
def test_each_motion_moves_where_its_anchor_is(motion):
    fields, anchor = ANCHORS[motion]
    size = (256, 144)
    spec = SceneSpec(motions=(motion,), **fields)
    frames = frames_of(spec, size=size, n=N)
    painting = paint(spec, 1, *size)
    inside = mask_of(anchor(painting), *size)
    assert inside.any() and not inside.all()
    diff = step_diff(frames)
    assert diff.mean() > 0.01, f"{motion} does not move"
    assert diff[inside].mean() > 0.2, f"{motion} barely moves at its anchor"
    # the change is localised: far stronger at the anchor than elsewhere
    assert diff[inside].mean() > 8 * diff[~inside].mean(), motion
    assert seam_ratio(frames) <= 1.05


def test_dust_floats_in_the_air_without_snow():
    spec = SceneSpec(scene="library", motions=("particles",))
    frames = frames_of(spec, size=(256, 144))
    painting = paint(spec, 1, 256, 144)
    air = mask_of([painting.air], 256, 144)
    assert (~air).any()
    diff = step_diff(frames)
    assert diff[air].mean() > 0.01
    assert diff[~air].max() == 0


def test_rain_falls_across_the_open_sky_outdoors():
    spec = SceneSpec(scene="rooftop_night", time_of_day="night", weather="rain",
                     motions=("rain",))
    painting = paint(spec, 1, 256, 144)
    assert painting.sky is not None
    diff = step_diff(frames_of(spec, size=(256, 144)))
    assert diff[mask_of([painting.sky], 256, 144)].mean() > 0.5


def test_fog_drifts_low_outdoors_and_behind_the_glass_indoors():
    out = SceneSpec(scene="balcony_sunset", weather="fog", motions=("particles",))
    diff = step_diff(frames_of(out, size=(256, 144)))
    top, low = diff[:30].mean(), diff[90:].mean()
    assert low > 0.05 and low > 3 * top
    inside = SceneSpec(scene="study_room", weather="fog", motions=("particles",))
    painting = paint(inside, 1, 256, 144)
    diff = step_diff(frames_of(inside, size=(256, 144)))
    glass = mask_of(painting.windows, 256, 144)
    assert diff[glass].mean() > 4 * diff[~glass].mean()


def test_motion_steps_are_small():
    # smooth: no frame-to-frame jumps, even for the busiest scenes
    for text in ("rainy window storm night", "study room", "bedroom night snow"):
        frames = frames_of(parse(text), size=(256, 144), n=24)
        f = frames.astype(np.int16)
        per_step = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
        assert per_step.max() < 12.0, text
        assert per_step.max() < 3 * np.median(per_step) + 0.5, text


# --------------------------------------------------------------------------- image mode

def _still(w=160, h=90):
    """A photo-like still: a dusky gradient with a few warm lamps and a dark floor."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 40 + 60 * ys / h
    img[..., 1] = 35 + 40 * ys / h
    img[..., 2] = 70 + 30 * xs / w
    for cx, cy in ((0.25, 0.3), (0.7, 0.45)):
        d2 = (xs - cx * w) ** 2 + (ys - cy * h) ** 2
        img += np.exp(-d2 / (0.004 * w * w))[..., None] * np.array([210, 160, 90])
    img[int(0.8 * h):] *= 0.6
    return np.clip(img, 0, 255).astype(np.uint8)


def test_image_mode_animates_over_the_picture():
    img = _still()
    spec = SceneSpec(scene="rainy_window", weather="rain",
                     motions=("rain", "flicker", "water_reflection"))
    loop = procedural.generate(spec, 4, SIZE, N, FPS, image=img)
    frames = loop.frames
    assert loop.metrics["seam_ratio"] <= 1.05
    assert loop.metrics["motion"] > 0.05
    # still recognisably the same picture
    assert np.abs(frames.astype(int) - img).mean() < 10.0
    for f in frames:
        assert np.corrcoef(f.ravel().astype(float), img.ravel().astype(float))[0, 1] > 0.8
    # a different picture gives a different loop key
    other = procedural.generate(spec, 4, SIZE, N, FPS, image=img[::-1].copy())
    assert other.params["image"] != loop.params["image"]


def test_image_mode_lights_are_its_bright_spots():
    img = _still()
    spec = SceneSpec(scene="study_room", motions=("flicker",))
    p = procedural.painting_from_image(img, spec, 1)
    assert p.lights and p.figure is None and p.windows == [(0, 0, 160, 90)]
    lum = img.astype(float).mean(axis=2)
    for L in p.lights:
        assert lum[int(L.y), int(L.x)] > np.percentile(lum, 85)
    frames = frames_of(spec, image=img)
    diff = step_diff(frames)
    at_lights = mask_of(_lights(p), 160, 90)
    assert diff[at_lights].mean() > 0.05
    assert diff[~at_lights].max() == 0
    assert p.reflections == []
    q = procedural.painting_from_image(img, SceneSpec(motions=("water_reflection",)), 1)
    assert q.reflections and q.reflections[0][1] > 45


def test_image_mode_without_weather_or_light_motions_is_still():
    img = _still()
    frames = frames_of(SceneSpec(scene="study_room", motions=("breathing", "steam")), image=img)
    # image / 255 * 255 is within 1e-5 of each level (correctly rounded IEEE operations,
    # no transcendental kernel) and +0.5 then truncation rounds: exact on any CPU
    assert (frames == img).all()


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, word", [
    (dict(frames=1), "frames"),
    (dict(frames=0), "frames"),
    (dict(size=(0, 90)), "width"),
    (dict(size=(160, -5)), "height"),
    (dict(size=(160,)), "size"),
    (dict(fps=0), "fps"),
    (dict(seed="x"), "seed"),
])
def test_bad_inputs_raise_value_error_naming_them(kwargs, word):
    args = dict(spec=parse("study room"), seed=1, size=SIZE, frames=N, fps=FPS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        procedural.generate(**args)


def test_bad_image_raises_value_error():
    spec = parse("study room")
    with pytest.raises(ValueError, match="image"):
        procedural.generate(spec, 1, SIZE, N, FPS, image=np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="image"):
        procedural.generate(spec, 1, SIZE, N, FPS, image=np.zeros((90, 160), np.uint8))


def test_weather_stays_on_the_glass_when_the_painting_marks_it():
    # a painting may say which part of each window is see-through (a plant on the
    # sill is not): rain then runs only there
    spec = SceneSpec(scene="rainy_window", weather="rain", motions=("rain",))
    size = (256, 144)
    painting = paint(spec, 1, *size)
    x0, y0, x1, y1 = painting.windows[0]
    glass = np.zeros(size[::-1], np.float32)
    for wx0, wy0, wx1, wy1 in painting.windows:
        glass[wy0:wy1, wx0:wx1] = 1.0
    bx0, by0 = x0 + (x1 - x0) // 4, y0 + (y1 - y0) // 2
    bx1, by1 = x0 + 3 * (x1 - x0) // 4, y1
    glass[by0:by1, bx0:bx1] = 0.0               # something in front of the pane
    painting.glass = glass
    from lofid.generators.painter import Animator
    frames = Animator(painting, spec, 1, N, FPS).render()
    diff = step_diff(frames)
    assert diff[by0:by1, bx0:bx1].max() == 0
    assert (frames[:, by0:by1, bx0:bx1] == frames[0, by0:by1, bx0:bx1]).all()
    still = np.round(painting.background[by0:by1, bx0:bx1] * 255)
    assert np.abs(frames[0, by0:by1, bx0:bx1] - still).max() <= 1    # no drops, no beads
    assert diff[glass > 0].mean() > 0.5
