"""The library under damage and growth: metadata checked on read as on write (anything
invalid goes to corrupt/, the rest plays on), and the size cap kept while lofid runs
without evicting a loop in use."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import av
import numpy as np
import pytest

from lofid.director import Director, DirectorSettings
from lofid.generators import get as generator
from lofid.library import Library, LibraryError
from lofid.scene import parse
from test_library import make_loop, painted
from helpers import Clock, lofid, wait_for

LOG = "lofid.library"
paint = generator("procedural")


def _edit(change):
    """A damage that rewrites one field of a loop's metadata file."""
    def damage(path: Path) -> None:
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))     # NaN is written as the bare word NaN
    return damage


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "note.txt").write_text("a folder where a metadata file should be")


DAMAGE = {
    "fps 0": _edit(lambda d: d.update(fps=0)),
    "fps -12": _edit(lambda d: d.update(fps=-12)),
    "fps NaN": _edit(lambda d: d.update(fps=float("nan"))),
    "n_frames 10^7": _edit(lambda d: d.update(n_frames=10**7)),
    "seam_ratio text": _edit(lambda d: d["metrics"].update(seam_ratio="smooth")),
    "empty params.size": _edit(lambda d: d["params"].update(size=[])),
    "spec without a scene": _edit(lambda d: d["spec"].pop("scene")),
    "a folder named KEY.json": _folder,
}


def aside(root: Path) -> list[str]:
    corrupt = root / "corrupt"
    return sorted(p.name for p in corrupt.iterdir()) if corrupt.exists() else []


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_metadata_found_at_start_is_moved_aside(tmp_path, damage, caplog):
    root = tmp_path / "loops"
    lib = Library(root)
    bad, good = lib.put(make_loop(seed=1)), lib.put(make_loop(seed=2))
    damage(root / f"{bad}.json")
    with caplog.at_level(logging.WARNING, logger=LOG):
        lib = Library(root)
    assert aside(root) == [f"{bad}.json", f"{bad}.mkv"]
    assert any(bad in r.getMessage() and "corrupt" in r.getMessage()
               for r in caplog.records if r.name == LOG and r.levelno == logging.WARNING)
    assert [e["key"] for e in lib.entries()] == [good] and len(lib) == 1
    with pytest.raises(KeyError):
        lib.get(bad)
    np.testing.assert_array_equal(lib.get(good).frames, painted(seed=2))


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_metadata_damaged_while_running_is_moved_aside_when_read(tmp_path, damage, caplog):
    root = tmp_path / "loops"
    lib = Library(root)
    bad, good = lib.put(make_loop(seed=1)), lib.put(make_loop(seed=2))
    listed = [e["key"] for e in lib.entries()]           # as the director lists, then reads
    assert sorted(listed) == sorted([bad, good])
    damage(root / f"{bad}.json")
    with caplog.at_level(logging.WARNING, logger=LOG):
        for read in (lib.get, lib.open, lambda key: lib.standby(key, 1)):
            with pytest.raises(KeyError):
                read(bad)
    assert aside(root) == [f"{bad}.json", f"{bad}.mkv"]
    assert bad in caplog.text
    assert [e["key"] for e in lib.entries()] == [good]
    np.testing.assert_array_equal(lib.get(good).frames, painted(seed=2))


def test_put_refuses_metadata_reading_would_refuse(tmp_path):
    lib = Library(tmp_path / "loops")
    with pytest.raises(LibraryError, match="size"):
        lib.put(make_loop(seed=1, size=[]))
    assert len(lib) == 0
    assert sorted(p.name for p in (tmp_path / "loops").iterdir()) == [".lock"]
    key = lib.put(make_loop(seed=1))             # the same loop, well described, is kept
    assert lib.meta(key)["params"]["size"] == [48, 36]


@pytest.mark.slow
def test_library_list_moves_damage_aside_and_lists_the_good_loops(tmp_path):
    root = tmp_path / "loops"
    lib = Library(root)
    good = [lib.put(make_loop(seed=s)) for s in (1, 2)]
    static = np.zeros((4, 16, 16, 3), np.uint8)
    static[3] = 255                                    # jumps at its seam: ratio infinite
    good.append(lib.put(make_loop(seed=3, frames=static)))
    assert lib.meta(good[-1])["metrics"]["seam_ratio"] is None
    bad = {}
    for n, (name, damage) in enumerate(DAMAGE.items()):
        key = lib.put(make_loop(seed=10 + n))
        damage(root / f"{key}.json")
        bad[name] = key
    fifo = lib.put(make_loop(seed=99))
    (root / f"{fifo}.json").unlink()
    os.mkfifo(root / f"{fifo}.json")                   # a plain read would block forever
    bad["a FIFO named KEY.json"] = fifo

    r = lofid("--library", str(root), "library", "list", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for key in good:
        assert key in r.stdout
    assert f"{len(good)} loop(s)" in r.stdout
    for name, key in bad.items():
        assert key not in r.stdout, name
        assert key in r.stderr, name                  # the log line naming what went aside
    assert sorted(aside(root)) == sorted(f"{k}{s}" for k in bad.values() for s in (".json", ".mkv"))
    r = lofid("--library", str(root), "library", "list", "--json", timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert sorted(e["key"] for e in json.loads(r.stdout)) == sorted(good)


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


@pytest.mark.slow
@pytest.mark.parametrize("names", [["fps 0"], list(DAMAGE)], ids=["fps 0", "every damage"])
def test_run_with_damaged_loops_of_its_scene_still_makes_and_rotates_new_ones(tmp_path, names):
    root = tmp_path / "loops"
    lib = Library(root)
    spec = parse("rooftop night")
    damaged = []
    for seed, damage in enumerate((DAMAGE[name] for name in names), start=1):
        key = lib.put(paint(spec, seed, (64, 36), 6, 10.0))
        damage(root / f"{key}.json")
        damaged.append(key)
    config = tmp_path / "lofid.toml"
    config.write_text('loop_size = "64x36"\nloop_frames = 6\n')
    out = tmp_path / "out.mp4"
    r = lofid("--library", str(root), "run", "--config", str(config), "--scene", "rooftop night",
              "-o", str(out), "--duration", "10", "--rotate", "1", "--crossfade", "0.5",
              "--size", "320x180")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for key in damaged:
        assert f"{key}.json" in aside(root)
        assert key in r.stderr                         # each was named as it went aside
    # New loops were made for the scene and rotated in: a crossfade every second or so.
    crossfades = [line for line in r.stderr.splitlines() if line.startswith("lofid: crossfade:")]
    assert len(crossfades) >= 5, r.stderr
    assert not any(key in line for key in damaged for line in crossfades)
    assert frame_count(out) == 10 * 30                 # an unpaced file gets every frame


# ---------------------------------------------------------------------- the cap

def test_a_capped_library_never_evicts_a_loop_in_use(tmp_path):
    lib = Library(tmp_path / "loops")
    playing = lib.put(make_loop(seed=1, created=1000.0))      # the oldest: evicted first...
    size = lib.meta(playing)["bytes"]
    lib.max_bytes = int(size * 2.5)
    lib.keep_in_use(lambda: {playing})                        # ...but it is playing
    made = [lib.put(make_loop(seed=s, created=1000.0 + s)) for s in range(2, 8)]
    assert playing in lib
    np.testing.assert_array_equal(lib.get(playing).frames, painted(seed=1))
    assert made[-1] in lib and len(lib) == 2                  # the newest and the one in use
    assert lib.total_bytes() <= lib.max_bytes
    assert lib.prune(0) == [made[-1]] and playing in lib      # a prune spares it too
    lib.keep_in_use(None)
    assert lib.prune(0) == [playing]


def test_a_director_keeps_its_capped_library_under_the_cap_and_its_loops_in_use(tmp_path):
    spec = parse("coffee shop")
    # Seven loops made long ago and never played fill most of the cap (seven and a
    # half loops): the director plays each once before it makes new ones, so when the
    # first new one comes the last of them is queued, unplayed and the oldest in the
    # library, first in line for eviction.
    old = Library(tmp_path / "loops")
    for seed in range(2, 9):
        loop = paint(spec, seed, (64, 36), 6, 12.0)
        loop.created = 1000.0 + seed
        old.put(loop)
    # More than the director has in use at once (playing, fading out, two queued, one
    # on standby) with the one just made, far fewer than it plays.
    cap = int(old.total_bytes() * 7.5 / 7)
    lib = Library(tmp_path / "loops", max_bytes=cap)
    d = Director(lib, spec, DirectorSettings(loop_size=(64, 36), frames=6, fps=12.0, rotate=1.0),
                 generate=paint)
    clock = Clock()
    d.attach_clock(clock)
    played = []
    try:
        d.first()
        played.append(d.current_key)
        for i in range(1, 16):
            clock.now = float(i)
            wait_for(lambda: len(d.ready_keys()) >= 2)
            assert d.next_ready() is not None
            played.append(d.current_key)
            wait_for(lambda: len(d.ready_keys()) >= 2)      # refilled: new loops were kept
            # Everything the player may still read is in the library, and all of it
            # fits the cap.
            in_use = {d.current_key, played[-2]} | set(d.ready_keys()) | set(d.standby_keys())
            assert in_use <= {e["key"] for e in lib.entries()}, i
            assert lib.total_bytes() <= cap
        assert len(set(played)) == 16 and len(lib) < 16
    finally:
        d.stop()


@pytest.mark.slow
def test_run_keeps_the_library_under_library_max_size(tmp_path):
    root = tmp_path / "loops"
    probe = Library(tmp_path / "probe")
    one = probe.meta(probe.put(paint(parse("rooftop night"), 1, (64, 36), 6, 10.0)))["bytes"]
    cap = int(one * 8)
    config = tmp_path / "lofid.toml"
    config.write_text(f'loop_size = "64x36"\nloop_frames = 6\nlibrary_max_size = "{cap}"\n')
    out = tmp_path / "out.mp4"
    r = lofid("--library", str(root), "run", "--config", str(config), "--scene", "rooftop night",
              "-o", str(out), "--duration", "20", "--rotate", "1", "--crossfade", "0.5",
              "--size", "320x180")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "damaged" not in r.stderr
    shown = {line.split(" to ")[1].split(",")[0]
             for line in r.stderr.splitlines() if line.startswith("lofid: crossfade:")}
    assert len(shown) >= 12, r.stderr                    # far more loops made than fit
    lib = Library(root)
    assert 0 < len(lib) < len(shown)
    assert lib.total_bytes() <= cap
    assert "evicted loop" in r.stderr
    assert frame_count(out) == 20 * 30


@pytest.mark.slow
def test_library_max_size_is_checked_and_shown_by_default(tmp_path):
    r = lofid("config", "--print-default")
    assert '# library_max_size = "2GB"' in r.stdout
    for bad in ('"lots"', '"-1GB"', '"nan"', "true"):
        config = tmp_path / "bad.toml"
        config.write_text(f"library_max_size = {bad}\n")
        r = lofid("run", "--config", str(config), "-o", "null", "--duration", "1")
        assert r.returncode == 2, (bad, r.stderr)
        assert "library_max_size" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_a_loop_being_opened_is_not_evicted_while_its_frames_decode(tmp_path):
    lib = Library(tmp_path / "loops")
    # Noise is slow to decode: its frames are still coming when the prune runs.
    noise = np.random.default_rng(3).integers(0, 256, (120, 180, 320, 3), dtype=np.uint8)
    key = lib.put(make_loop(seed=1, frames=noise))
    other = lib.put(make_loop(seed=2, created=1.0))
    loop = lib.open(key)
    assert loop.loader.count < len(noise)          # still decoding
    assert lib.prune(0) == [other]                 # everything else goes, not this one
    loop.wait_frame(len(noise) - 1)
    np.testing.assert_array_equal(loop.frames, noise)
    wait_for(lambda: loop.loader.done)
    assert loop.loader.error is None and key in lib
    assert lib.prune(0) == [key]                   # decoded: no longer held
