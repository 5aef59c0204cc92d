"""lofid.media: one frame-rate rule for the player and the encoder, and the ground floor.

Bug fixed here: the player and the encoder each turned a frame rate into a fraction
in their own way, and they disagreed on 29.97: PlayerSettings(fps=29.97) ran the
clock at 2997/100 (its comment promised 30000/1001), while VideoSettings(fps=29.97)
gave 30000/1001. A stream played at 29.97 came out at 2997/100 instead of the NTSC
rate anyone typing 29.97 means.
"""

from __future__ import annotations

import ast
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lofid.encode import VideoSettings
from lofid.loop import Loop
from lofid.media import as_fps
from lofid.outputs.file import FileOutput
from lofid.player import Player, PlayerSettings
from lofid.scene import SceneSpec

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("typed, meant", [
    (29.97, Fraction(30000, 1001)),
    (23.976, Fraction(24000, 1001)),
    (59.94, Fraction(60000, 1001)),
    (np.float32(29.97), Fraction(30000, 1001)),
    (12.5, Fraction(25, 2)),
    (30, Fraction(30)),
    (np.int64(24), Fraction(24)),
    (Fraction(2997, 100), Fraction(2997, 100)),     # a fraction is taken as given
])
def test_as_fps_reads_rates_as_meant(typed, meant):
    assert as_fps(typed) == meant


@pytest.mark.parametrize("bad", [0, 0.5, 241, True, "30", None, float("nan"), float("inf")])
def test_as_fps_refuses_what_is_not_a_frame_rate(bad):
    with pytest.raises(ValueError, match=r"player fps must be a number from 1 to 240"):
        as_fps(bad, "player fps")


def test_player_and_encoder_agree_on_29_97():
    assert PlayerSettings(fps=29.97).fps == VideoSettings(fps=29.97).fps == Fraction(30000, 1001)


def test_a_stream_played_at_29_97_is_ntsc(tmp_path):
    video = np.full((6, 64, 64, 3), 120, np.uint8)
    loop = Loop(frames=video, fps=10.0, spec=SceneSpec(), seed=1, generator="test")

    class One:
        def first(self):
            return loop

        def next_ready(self):
            return None

    path = tmp_path / "ntsc.mp4"
    Player(One(), [FileOutput(path)], None,
           PlayerSettings(fps=29.97, size=(64, 64), duration=1.0)).run()
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        times = sorted(p.pts * p.time_base for p in c.demux(stream) if p.pts is not None)
    # One second, rounded up to whole frames, each 1001/30000 s after the one before.
    assert len(times) == 30
    assert times[-1] - times[0] == 29 * Fraction(1001, 30000)


# --------------------------------------------------------------------------- imports

# The ground floor of the design: these import nothing of lofid but errors.py, which
# is itself ground floor and imports nothing at all.
GROUND_FLOOR = ("errors", "loop", "media", "paths", "scene")


def _lofid_imports(path: Path) -> list[str]:
    """Every module of lofid the file imports, wherever in the file the import is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "lofid"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:                        # relative: inside lofid by definition
                found.append("." * node.level + (node.module or ""))
            elif node.module and node.module.split(".")[0] == "lofid":
                found.append(node.module)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", GROUND_FLOOR)
def test_the_ground_floor_imports_nothing_else_of_lofid(name):
    allowed = [] if name == "errors" else ["lofid.errors"]
    assert set(_lofid_imports(ROOT / "lofid" / f"{name}.py")) <= set(allowed)


def test_the_import_check_sees_imports():
    # The check above would pass on anything if it saw no imports at all.
    assert "lofid.loop" in _lofid_imports(ROOT / "lofid" / "export.py")
    assert "lofid.media" in _lofid_imports(ROOT / "lofid" / "encode.py")
