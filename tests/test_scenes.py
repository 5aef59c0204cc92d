"""The painter's still pictures: every scene paints, reads as itself, and follows the spec."""

from __future__ import annotations

import dataclasses
import itertools
import types

import numpy as np
import pytest

from lofid.generators import painter
from lofid.generators.painter import Figure, Light, Painting, paint
from lofid.scene import SCENES, parse


def spec_for(scene, **over):
    """The parsed spec of `scene` (its own default time, weather, motions), then `over`."""
    base = parse(scene.replace("_", " "))
    assert base.scene == scene
    return dataclasses.replace(base, **over)


_cache: dict = {}


def painted(scene, seed=1, size=(320, 180), **over) -> Painting:
    key = (scene, seed, size, tuple(sorted(over.items())))
    if key not in _cache:
        _cache[key] = paint(spec_for(scene, **over), seed, *size)
    return _cache[key]


def _inside(rect, w, h):
    x0, y0, x1, y1 = rect
    return 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h


@pytest.mark.parametrize("size", [(320, 180), (192, 192)], ids=["16:9", "square"])
@pytest.mark.parametrize("scene", SCENES)
def test_every_scene_paints_a_valid_picture_with_anchors_in_frame(scene, size):
    w, h = size
    p = painted(scene, size=size)
    assert isinstance(p, Painting)
    bg = p.background
    assert bg.shape == (h, w, 3) and bg.dtype == np.float32
    assert np.isfinite(bg).all() and bg.min() >= 0.0 and bg.max() <= 1.0
    assert bg.std() > 0.05, "a flat picture"
    for rect in p.windows + p.curtains + p.reflections + [p.air] + ([p.sky] if p.sky else []):
        assert _inside(rect, w, h), rect
        assert all(isinstance(v, int) for v in rect)
    for light in p.lights:
        assert isinstance(light, Light) and light.kind in painter.LIGHT_KINDS
        assert 0 <= light.x <= w and 0 <= light.y <= h and light.radius > 0
        assert all(0.0 <= c <= 1.0 for c in light.color)
    for x, y, s in p.cups:
        assert 0 <= x < w and 0 <= y < h and s > 0
    for name in ("warm", "ambient", "rain", "snow", "dust", "steam"):
        assert len(p.palette[name]) == 3
    f = p.figure
    if f is not None:
        assert isinstance(f, Figure)
        fh, fw = f.rgba.shape[:2]
        assert f.rgba.shape[2] == 4 and f.rgba.dtype == np.float32 and f.hair.shape == (fh, fw)
        assert 0 <= f.x and f.x + fw <= w and 0 <= f.y and f.y + fh <= h
        assert 0 <= f.chest_y < fh
        assert f.rgba.min() >= 0 and f.rgba.max() <= 1 and f.hair.min() >= 0 and f.hair.max() <= 1
        # hair is a real part of the person, and sits above the chest
        assert f.hair.sum() > 0.02 * fh * fw
        hair_rows = np.nonzero(f.hair.max(axis=1) > 0.5)[0]
        assert hair_rows.min() < f.chest_y


def test_scenes_look_different_from_each_other():
    pics = {s: painted(s).background for s in SCENES}
    for a, b in itertools.combinations(SCENES, 2):
        d = np.abs(pics[a] - pics[b]).mean()
        assert d > 0.05, f"{a} and {b} look alike (mean abs difference {d:.3f})"


def _edges(img):
    g = img @ np.array([0.3, 0.59, 0.11], np.float32)
    e = np.zeros(g.shape, bool)
    e[:, 1:] |= np.abs(np.diff(g, axis=1)) > 0.04
    e[1:, :] |= np.abs(np.diff(g, axis=0)) > 0.04
    return e


@pytest.mark.parametrize("scene", SCENES)
def test_seeds_change_the_composition_not_only_colours(scene):
    a, b = painted(scene, seed=1), painted(scene, seed=2)
    ea, eb = _edges(a.background), _edges(b.background)
    overlap = (ea & eb).sum() / max((ea | eb).sum(), 1)
    assert overlap < 0.6, f"{scene}: edge maps of two seeds overlap {overlap:.2f}"


def test_same_seed_paints_the_same_picture():
    spec = spec_for("study_room")
    a, b = paint(spec, 7, 160, 90), paint(spec, 7, 160, 90)
    assert np.array_equal(a.background, b.background)
    assert a.windows == b.windows and a.cups == b.cups and a.lights == b.lights
    assert np.array_equal(a.figure.rgba, b.figure.rgba)


@pytest.mark.parametrize("scene", SCENES)
def test_night_is_darker_than_day(scene):
    day = painted(scene, time_of_day="day", weather="clear").background.mean()
    night = painted(scene, time_of_day="night", weather="clear").background.mean()
    assert night < day - 0.1, f"{scene}: night {night:.2f} vs day {day:.2f}"


def test_sunset_is_warmer_than_day_in_the_sky():
    day = painted("balcony_sunset", time_of_day="day")
    sunset = painted("balcony_sunset", time_of_day="sunset")
    x0, y0, x1, y1 = day.sky
    def warmth(p):
        sky = p.background[y0:y1, x0:x1]
        return float((sky[..., 0] - sky[..., 2]).mean())
    assert warmth(sunset) > warmth(day) + 0.1


def _view_of(p):
    """Mean colour and contrast of what is seen through the windows."""
    px = np.concatenate([p.background[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in p.windows])
    return px.mean(), px.std()


def test_weather_shows_through_the_window():
    clear = painted("study_room", weather="clear")
    rain = painted("study_room", weather="rain")
    fog = painted("study_room", weather="fog")
    snow = painted("study_room", weather="snow")
    assert clear.windows == rain.windows, "weather must not move the window"
    assert _view_of(rain)[0] < _view_of(clear)[0] - 0.05, "rain darkens the view"
    assert _view_of(fog)[1] < _view_of(clear)[1] * 0.8, "fog washes the view out"
    assert _view_of(snow)[0] > _view_of(rain)[0]


def _kinds(p):
    return {light.kind for light in p.lights}


def test_each_scene_has_the_anchors_its_motions_need():
    w, h = 320, 180
    p = painted("study_room")
    assert p.figure is not None and p.cups and p.windows and p.curtains
    assert "lamp" in _kinds(p)
    p = painted("coffee_shop")
    assert len(p.cups) >= 2 and "lamp" in _kinds(p) and p.windows
    big = max((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in p.windows)
    assert big > 0.04 * w * h
    p = painted("bedroom_night")
    assert sum(light.kind == "fairy" for light in p.lights) >= 5 and p.windows and p.curtains
    p = painted("rainy_window")
    glass = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in p.windows)
    assert glass > 0.4 * w * h, "the window fills the picture"
    assert "city" in _kinds(p) and p.reflections
    p = painted("balcony_sunset")
    assert p.sky is not None and "sun" in _kinds(p) and p.cups and p.figure is not None
    p = painted("library")
    assert "lamp" in _kinds(p) and p.windows
    ax0, ay0, ax1, ay1 = p.air
    assert (ax1 - ax0) * (ay1 - ay0) > 0.3 * w * h
    p = painted("kitchen_morning")
    assert p.cups and p.windows and p.curtains
    p = painted("rooftop_night")
    assert p.sky is not None and p.figure is not None and p.reflections
    assert {"star", "city"} <= _kinds(p)


# what each motion needs from the picture
_NEEDS = {
    "hair_sway": lambda p: p.figure is not None and p.figure.hair.max() > 0.5,
    "breathing": lambda p: p.figure is not None,
    "steam": lambda p: len(p.cups) > 0,
    "flicker": lambda p: bool(_kinds(p) & {"lamp", "fairy", "candle", "monitor"}),
    "rain": lambda p: bool(p.windows) or p.sky is not None,
    "curtain": lambda p: len(p.curtains) > 0,
    "particles": lambda p: p.air[2] > p.air[0] and p.air[3] > p.air[1],
    "water_reflection": lambda p: len(p.reflections) > 0,
}


@pytest.mark.parametrize("scene", SCENES)
def test_default_motions_find_their_anchors(scene):
    spec = parse(scene.replace("_", " "))
    for seed in (1, 2, 3):
        p = painted(scene, seed=seed, **{"time_of_day": spec.time_of_day, "weather": spec.weather})
        for motion in spec.motions:
            assert _NEEDS[motion](p), f"{scene} seed {seed}: nothing for {motion} to move"


def test_christmas_adds_lights():
    plain = painted("study_room")
    xmas = painted("study_room", theme="christmas")
    assert len(xmas.lights) > len(plain.lights)


@pytest.mark.parametrize("bad, what", [
    (dict(width=0), "width"), (dict(height=10), "height"), (dict(width=320.5), "width"),
    (dict(seed="x"), "seed"),
])
def test_bad_sizes_and_seeds_are_refused(bad, what):
    args = dict(seed=1, width=320, height=180)
    args.update(bad)
    with pytest.raises(ValueError, match=what):
        paint(spec_for("study_room"), args["seed"], args["width"], args["height"])


def test_unknown_scene_is_refused():
    fields = {f: getattr(spec_for("study_room"), f) for f in
              ("motions", "season", "theme", "weather", "time_of_day", "setting", "mood")}
    spec = types.SimpleNamespace(scene="moon_base", **fields)
    with pytest.raises(ValueError, match="moon_base"):
        paint(spec, 1, 320, 180)


@pytest.mark.parametrize("scene", SCENES)
def test_glass_is_only_the_see_through_part_of_the_windows(scene):
    p = paint(parse(scene.replace("_", " ")), 2, 320, 180)
    assert p.glass.shape == (180, 320) and p.glass.min() >= 0 and p.glass.max() <= 1
    inside = np.zeros((180, 320), bool)
    for x0, y0, x1, y1 in p.windows:
        inside[y0:y1, x0:x1] = True
    assert not p.glass[~inside].any()        # no glass outside a window pane
    if p.windows:
        assert p.glass[inside].mean() > 0.5  # and the panes are mostly clear


def test_things_on_the_sill_stand_in_front_of_the_glass():
    # The rainy window's candles, mug and plant cover part of the pane: rain must not
    # run over them, so the glass there is not see-through.
    p = paint(parse("rainy window, night"), 4, 640, 360)
    x0, y0, x1, y1 = p.windows[0]
    bottom = p.glass[y1 - 30:y1, x0:x1]
    assert bottom.min() < 0.1 and p.glass[y0:y0 + 30, x0 + 40:x1 - 40].mean() > 0.9
