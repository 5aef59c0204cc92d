"""Pictures of the procedural painter, named: every scene, every motion, the weathers,
times of day, seasons, the christmas theme and a user's still image.

Shared by tests/test_painter_pictures.py (robust statistics recorded from the
painter) and tests/painter_identity.py (exact frames compared between two trees).
Only the public interface is used (lofid.scene, lofid.generators.procedural), so
the same cases run against any version of the painter's insides.
"""

from __future__ import annotations

import hashlib

import numpy as np

from lofid.scene import MOTIONS, SCENES, SEASONS, TIMES, WEATHERS, SceneSpec, parse

FPS = 12

# A scene where each motion has something to move (a figure, cups, lights, panes...).
MOTION_HOME = {
    "hair_sway": "study_room", "rain": "rainy_window", "steam": "coffee_shop",
    "flicker": "bedroom_night", "curtain": "bedroom_night", "particles": "library",
    "water_reflection": "rooftop_night", "breathing": "rooftop_night",
}


def still_image(w: int, h: int) -> np.ndarray:
    """A made-up photograph from integer arithmetic only (the same bytes everywhere):
    a dusky gradient, a bright window and a lit lower band."""
    ys, xs = np.mgrid[0:h, 0:w]
    img = np.stack([40 + 120 * ys // h, 30 + 60 * xs // w, 90 + 80 * (h - ys) // h], axis=-1)
    img[h // 5:h // 2, w // 3:w // 2] = (250, 220, 160)
    img[h * 4 // 5:, :] += 40
    return np.clip(img, 0, 255).astype(np.uint8)


def cases(full: bool = False) -> dict[str, dict]:
    """name -> {"spec", "seed", "size", "frames", "image"}. `full`: many more (every
    scene in every weather, time and season, every motion on every scene, two sizes)."""
    out: dict[str, dict] = {}

    def add(name, spec, seed=3, size=(96, 54), frames=8, image=None):
        out[name] = {"spec": spec, "seed": seed, "size": size, "frames": frames,
                     "image": image}

    for i, scene in enumerate(SCENES, 1):
        add(f"SCENE-{i:02d} {scene}", parse(scene.replace("_", " ")))
    scenes = SCENES if full else (None,)
    for m in MOTIONS:
        for scene in scenes:
            home = scene or MOTION_HOME[m]
            add(f"motion {m} on {home}", SceneSpec(scene=home, motions=(m,)))
    for scene in SCENES if full else ("study_room", "balcony_sunset"):
        word = scene.replace("_", " ")
        for weather in WEATHERS:
            add(f"{scene} weather {weather}", parse(f"{word} {weather}"))
        for time in TIMES:
            add(f"{scene} time {time}", parse(f"{word} {time.replace('_', ' ')}"))
        for season in SEASONS:
            add(f"{scene} season {season}", parse(f"{word} {season}"))
        add(f"{scene} christmas", parse(f"{word} christmas"))
    add("rainy night coffee shop, jazz", parse("rainy night, coffee shop, jazz lofi"))
    add("snowy winter bedroom, christmas", parse("snowy winter bedroom, christmas"))
    add("foggy autumn rooftop", parse("foggy autumn rooftop"))
    add("negative seed", parse("library"), seed=-5)
    add("odd size", parse("kitchen morning"), size=(75, 47))
    add("portrait", parse("balcony sunset"), size=(48, 86))
    spec = SceneSpec(scene="study_room", motions=("rain", "flicker", "particles",
                                                  "water_reflection", "breathing"))
    add("still image", spec, image=still_image(96, 54))
    if full:
        for i, scene in enumerate(SCENES, 1):
            add(f"SCENE-{i:02d} {scene} 320x180", parse(scene.replace("_", " ")),
                seed=11, size=(320, 180), frames=12)
        add("still image 320x180", spec, size=(320, 180), frames=12,
            image=still_image(320, 180))
    return out


def frames_of(case: dict) -> np.ndarray:
    """The loop's frames, (N, H, W, 3) uint8, as `lofid generate` makes them."""
    from lofid.generators import procedural

    loop = procedural.generate(case["spec"], case["seed"], case["size"], case["frames"], FPS,
                               image=case["image"])
    return loop.frames


def digest(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
