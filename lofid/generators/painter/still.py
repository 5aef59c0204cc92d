"""The procedural painter's still pictures: one cozy illustration per scene.

`paint(spec, seed, width, height)` draws the parts of a scene that do not move and
says where the moving parts go (windows for rain, lights that flicker, cups that
steam, curtains, the figure, reflections, sky, air for dust). The animation lives in
the motions and only reads this contract (picture.Painting).

How a picture is made:
1. the view outside (sky, skyline, hills) is drawn into its own buffer, in its final
   colours, following time of day and weather (views.py);
2. the room is drawn into an RGBA layer in plain surface colours; glass panes are
   holes in that layer (rooms/, windows.py, furniture.py, lamps.py);
3. a light map (ambient light of the hour plus pools from lamps and windows) multiplies
   the room, so one lamp warms the desk and the wall around it;
4. the room is laid over the view, then emissive things (bulbs, glows, lit windows)
   are added, and a soft vignette closes the frame (finish.py).
Composition (where things are, how many) is drawn from generators seeded by the seed
and the scene alone, so the same seed keeps its layout across sizes and weathers."""

from __future__ import annotations

import numpy as np

from lofid.errors import BadArgument
from lofid.scene import TIMES, WEATHERS

from . import finish, person
from .canvas import mix, rgb
from .colours import SKY, WARM, season_leaf
from .context import Context
from .picture import MIN_SIZE, Painting, SCENE_NAMES
from .rooms import ROOMS


def motion_palette(ctx: Context) -> dict[str, tuple[float, float, float]]:
    """The colours the motions draw with (rain, snow, dust, steam...) in this light."""
    snow = rgb("#f4f7fb") if not ctx.night else rgb("#c8d0e8")
    rain = mix(SKY[ctx.time][2], rgb("#c8d4e4"), 0.6)
    return {
        "warm": WARM,
        "ambient": ctx.ambient,
        "rain": rain,
        "snow": snow,
        "dust": rgb("#fff0c8") if not ctx.night else rgb("#ffd9a0"),
        "steam": rgb("#f4f1ec") if not ctx.night else rgb("#d8d4d0"),
        "sky": SKY[ctx.time][1],
        "leaf": season_leaf(ctx.season, 0) if ctx.season != "autumn" else rgb("#d9752e"),
    }


def glass_mask(ctx: Context) -> np.ndarray:
    """See-through glass: the holes of the room layer, inside the window panes only."""
    glass = np.zeros((ctx.H, ctx.W), np.float32)
    for x0, y0, x1, y1 in ctx.windows:
        glass[y0:y1, x0:x1] = 1.0 - ctx.layer[y0:y1, x0:x1, 3]
    return glass


def _check(spec, seed, width, height):
    for name in ("scene", "weather", "time_of_day", "season", "theme"):
        if not hasattr(spec, name):
            raise BadArgument(f"spec {spec!r} has no field {name!r}: expected a SceneSpec")
    if spec.scene not in SCENE_NAMES:
        raise BadArgument(f"scene {spec.scene!r} unknown: expected one of {', '.join(SCENE_NAMES)}")
    if spec.time_of_day not in TIMES:
        raise BadArgument(f"time_of_day {spec.time_of_day!r} unknown: expected one of {', '.join(TIMES)}")
    if spec.weather not in WEATHERS:
        raise BadArgument(f"weather {spec.weather!r} unknown: expected one of {', '.join(WEATHERS)}")
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < MIN_SIZE:
            raise BadArgument(f"{name} {v!r} invalid: expected an integer >= {MIN_SIZE}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise BadArgument(f"seed {seed!r} invalid: expected an integer")


def paint(spec, seed: int, width: int, height: int) -> Painting:
    """Draw the still picture of `spec` and the anchors of its moving parts."""
    _check(spec, seed, width, height)
    ctx = Context(spec, seed, int(width), int(height))
    ROOMS[spec.scene](ctx)
    # light the room and lay it over the view
    # the layer is premultiplied, so lighting it and laying it over the view is
    # room * light + view * (1 - alpha)
    img = ctx.layer[..., :3]
    img *= ctx.lightmap
    finish.tonemap(img)
    img += ctx.view * (1.0 - ctx.layer[..., 3:4])
    for draw in ctx.emissive:
        draw(img)
    if ctx.figure_args is not None:
        fx, fb, fh = ctx.figure_args
        ctx.figure = person.make_figure(ctx, fx, fb, fh, ctx.rng("figure"), cap=ctx.figure_cap)
    finish.vignette(img)
    finish.grain(img, ctx.rng("grain"))
    np.clip(img, 0.0, 1.0, out=img)
    # at unusual aspect ratios some things fall outside the frame: they have no anchor
    W, H = ctx.W, ctx.H
    ctx.cups = [c for c in ctx.cups if 0 <= c[0] < W and 0 <= c[1] < H]
    ctx.lights = [li for li in ctx.lights if 0 <= li.x <= W and 0 <= li.y <= H]
    return Painting(background=img, windows=ctx.windows, lights=ctx.lights, cups=ctx.cups,
                    curtains=ctx.curtains, figure=ctx.figure, reflections=ctx.reflections,
                    sky=ctx.sky, air=ctx.air, palette=motion_palette(ctx), glass=glass_mask(ctx))
