"""`lofid library add FILE --prompt TEXT` with no daemon running: a loop made elsewhere
(MP4, GIF, a folder or pattern of PNG frames) read, checked and kept in the library
folder, then read back with `lofid library list/show`. Bad files are in
test_bad_input.py's table; through a running daemon, test_comfyui_nodes.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers import lofid


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A painted loop written as MP4, GIF and PNG frames, and a library folder."""
    from lofid import generators
    from lofid.export import export
    from lofid.scene import parse
    w = tmp_path_factory.mktemp("made")
    loop = generators.get("procedural")(parse("sunset rooftop, summer"), 4, (96, 64), 10, 10.0)
    export(loop, w / "roof.mp4")
    export(loop, w / "roof.gif")
    (w / "pngs").mkdir()
    for i, frame in enumerate(loop.frames):      # frame_2 must come before frame_10
        Image.fromarray(frame).save(w / "pngs" / f"frame_{i + 1}.png")
    return w, loop


def add(w, *args):
    r = lofid("--library", w / "lib", "library", "add", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0], r


def show(w, key):
    r = lofid("--library", w / "lib", "library", "show", key)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_png_frames_are_kept_exactly_in_name_order(made):
    from lofid.library import Library
    from lofid.loop import compute_metrics
    w, loop = made
    key, r = add(w, w / "pngs", "--prompt", "sunset rooftop, summer", "--fps", "10")
    assert "kept in" in r.stdout and "seam ratio" in r.stdout
    meta = show(w, key)
    assert (meta["spec"]["time_of_day"], meta["spec"]["season"]) == ("sunset", "summer")
    assert (meta["n_frames"], meta["width"], meta["height"], meta["fps"]) == (10, 96, 64, 10.0)
    kept = Library(w / "lib").get(key)
    assert np.array_equal(kept.frames, loop.frames)        # PNG and the library: lossless
    # Exact: the same frames (PNG is lossless) through the same compute_metrics on
    # this machine, in lofid's process and here.
    assert meta["metrics"] == compute_metrics(loop.frames)
    # A pattern names the same frames: the same loop, kept once.
    again, _ = add(w, str(w / "pngs" / "frame_*.png"), "--prompt", "sunset rooftop, summer",
                   "--fps", "10")
    assert again == key


def test_mp4_and_gif_keep_their_own_rate(made):
    w, loop = made
    added = []
    for name, fps in (("roof.mp4", 10.0), ("roof.gif", 10.0)):
        key, r = add(w, w / name, "--prompt", "rooftop at sunset, lofi")
        added.append(key)
        meta = show(w, key)
        assert (meta["n_frames"], meta["width"], meta["height"], meta["fps"]) == (10, 96, 64, fps), name
        assert meta["generator"] == "file" and meta["params"]["prompt"] == "rooftop at sunset, lofi"
        # A painted loop is seamless; lossy H.264 and a 256-colour palette keep it so.
        assert meta["metrics"]["seam_ratio"] < 1.5, name
    listed = lofid("--library", w / "lib", "library", "list", "--json")
    keys = [e["key"] for e in json.loads(listed.stdout)]
    # Two loops (their frames differ after lossy coding), each listed once.
    assert len(set(added)) == 2 and all(keys.count(k) == 1 for k in added)
    # --fps over the file's own rate.
    key, _ = add(w, w / "roof.mp4", "--prompt", "rooftop at sunset, lofi", "--fps", "8")
    assert show(w, key)["fps"] == 8.0


def test_play_with_no_daemon_keeps_it_and_says_nothing_plays(made, tmp_path, monkeypatch):
    w, _ = made
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))      # no socket there
    monkeypatch.setenv("LOFID_LIBRARY", str(tmp_path / "lib"))
    r = lofid("library", "add", w / "roof.gif", "--prompt", "rooftop", "--play")
    assert r.returncode == 0, r.stderr
    assert "nothing plays it now" in r.stderr and str(tmp_path / "lib") in r.stdout
