"""The procedural painter's pictures stay what they were: every scene, every motion,
the weathers, times of day, seasons, the christmas theme and a still image, compared
with statistics recorded from the painter (tests/painter_pictures.json).

Why statistics and not frame hashes: numpy's transcendental kernels (exp, sin,
power) take different SIMD paths on different x86-64 CPUs and may differ in the last
ulp, which can flip a pixel's rounding to uint8, nudge a sprite by a pixel, or change
which step of a loop is the calmest (the loop's rotation). So each case is reduced
to what such differences cannot move: the mean frame and the mean step-to-step
change, each averaged over an 8x8 grid of blocks (both are the same for any rotation
of the loop). A one-level flip of a few pixels moves a block mean by about 0.01;
anything a person would see (a lamp moved, a colour changed, a motion gone or
stronger) moves it by whole levels. Exact frames are compared between two trees on
one machine by tests/painter_identity.py. (With numpy's AVX2 and AVX-512 kernels
turned off by NPY_DISABLE_CPU_FEATURES, 4 of that script's 208 cases change bytes;
none of these statistics moves.)

Re-record (only when the pictures are meant to change, with PAINTER_VERSION raised):
    python tests/test_painter_pictures.py --record
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from painter_cases import cases, frames_of  # noqa: E402

RECORD = Path(__file__).with_name("painter_pictures.json")
GRID = 8
COLOUR_TOL = 0.5      # uint8 levels, per block of the mean frame
MOTION_TOL = 0.1      # uint8 levels, per block of the mean step-to-step change


def _blocks(a: np.ndarray) -> np.ndarray:
    """(H, W, ...) float64 -> (GRID, GRID, ...) block means."""
    rows = np.array_split(np.arange(a.shape[0]), GRID)
    cols = np.array_split(np.arange(a.shape[1]), GRID)
    return np.array([[a[r[0]:r[-1] + 1, c[0]:c[-1] + 1].mean(axis=(0, 1)) for c in cols]
                     for r in rows])


def statistics(frames: np.ndarray) -> dict:
    f = frames.astype(np.int64)
    mean = f.sum(axis=0) / len(f)                                   # rotation-invariant
    step = np.abs(np.roll(f, -1, axis=0) - f).sum(axis=(0, 3)) / (len(f) * 3)
    return {"shape": list(frames.shape),
            "colour": np.round(_blocks(mean), 1).tolist(),
            "motion": np.round(_blocks(step), 2).tolist()}


CASES = cases()


def test_every_scene_and_motion_is_covered():
    from lofid.scene import MOTIONS, SCENES

    names = " | ".join(CASES)
    assert all(s in names for s in SCENES) and all(f"motion {m}" in names for m in MOTIONS)
    assert set(json.loads(RECORD.read_text())) == set(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_picture_matches_the_record(name):
    want = json.loads(RECORD.read_text())[name]
    got = statistics(frames_of(CASES[name]))
    assert got["shape"] == want["shape"]
    colour = np.abs(np.array(got["colour"]) - np.array(want["colour"]))
    motion = np.abs(np.array(got["motion"]) - np.array(want["motion"]))
    assert colour.max() <= COLOUR_TOL, \
        f"{name}: the picture changed (block colour off by {colour.max():.2f} levels)"
    assert motion.max() <= MOTION_TOL, \
        f"{name}: the motion changed (block motion off by {motion.max():.3f} levels)"


def _record() -> None:
    data = {name: statistics(frames_of(case)) for name, case in CASES.items()}
    lines = [f"{json.dumps(k)}: {json.dumps(data[k], separators=(',', ':'))}" for k in sorted(data)]
    RECORD.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"recorded {len(data)} cases in {RECORD}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_painter_pictures.py --record")
    _record()
