"""The on-disk loop library: round trips, keys, queries, eviction, crashes, damage."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lofid.library import CorruptLoopError, Library, LibraryError, default_root
from lofid.loop import Loop
from lofid.scene import SceneSpec, parse

LOG = "lofid.library"


def painted(n=6, h=36, w=48, seed=0):
    """Frames like a painted loop: smooth gradients with a few soft discs circling.
    Float math, but the same call in the same process gives the same bytes, so tests
    compare a stored loop with painted(seed=...) made again, exactly (storage is lossless)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([0.2 + 0.6 * y / h, 0.3 + 0.3 * x / w,
                     0.5 + 0.3 * np.sin(3 * x / w + y / h)], -1)
    discs = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.15) * max(h, w),
              rng.uniform(0, 1, 3)) for _ in range(5)]
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        frame = base.copy()
        for k, (cx, cy, r, colour) in enumerate(discs):
            phase = 2 * np.pi * (i / n + k / len(discs))
            px, py = cx + 0.1 * w * np.cos(phase), cy + 0.1 * h * np.sin(phase)
            # only the disc's bounding box changes
            x0, x1 = max(0, int(px - r - 1)), min(w, int(px + r + 2))
            y0, y1 = max(0, int(py - r - 1)), min(h, int(py + r + 2))
            if x0 >= x1 or y0 >= y1:
                continue
            box = (slice(y0, y1), slice(x0, x1))
            alpha = np.clip(r - np.hypot(x[box] - px, y[box] - py), 0, 1)[..., None] * 0.8
            frame[box] = frame[box] * (1 - alpha) + colour * alpha
        frames[i] = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)
    return frames


def make_loop(spec=None, seed=1, frames=None, created=None, **params):
    spec = spec if spec is not None else parse("rainy night in a coffee shop")
    frames = painted(seed=seed) if frames is None else frames
    return Loop(frames=frames, fps=12.0, spec=spec, seed=seed, generator="procedural",
                params={"size": [frames.shape[2], frames.shape[1]], **params}, created=created)


@pytest.fixture
def root(tmp_path):
    return tmp_path / "loops"


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".tmp-"))


# ------------------------------------------------------------------ round trip

def test_put_get_round_trip_is_bit_exact(root):
    lib = Library(root)
    noisy = np.random.default_rng(5).integers(0, 256, (4, 17, 23, 3), dtype=np.uint8)
    for loop in (make_loop(), make_loop(seed=2, frames=noisy)):
        key = lib.put(loop)
        back = lib.get(key)
        assert back.frames.dtype == np.uint8
        np.testing.assert_array_equal(back.frames, loop.frames)
        assert back.metadata() == loop.metadata()
        assert back.spec == loop.spec
        assert key in lib
    assert len(lib) == 2
    # A new Library on the same folder reads the same loops.
    again = Library(root)
    np.testing.assert_array_equal(again.get(key).frames, noisy)


def test_a_loop_that_comes_encoded_decodes_when_first_waited_for(root):
    # A loop whose frames came in the library's format (from a Ray worker): nothing is
    # decoded until a frame is waited for, then every frame is the original; bytes
    # that match their digest but do not decode fail the wait, with the reason.
    from lofid.library import StoredFrames, encode_frames, loop_from_stored
    loop = make_loop(frames=painted(8))
    came = loop_from_stored(loop.metadata(), encode_frames(loop))
    assert came.loader.count == 0 and came.metadata() == loop.metadata()
    came.wait_frame(0, timeout=30)
    came.wait_frame(7, timeout=30)
    # Exact: the library's codec is lossless (H.264 RGB at qp 0).
    np.testing.assert_array_equal(came.frames, loop.frames)
    junk = b"not a frames file" * 100
    bad = loop_from_stored(loop.metadata(), StoredFrames(junk, len(junk),
                                                         hashlib.sha256(junk).hexdigest()))
    with pytest.raises(LibraryError, match="is damaged: its frames do not decode"):
        bad.wait_frame(0, timeout=30)
    with pytest.raises(ValueError, match="the frames are 3 bytes, their maker said"):
        loop_from_stored(loop.metadata(), StoredFrames(b"abc", 4, "0" * 64))

def test_frames_are_stored_compactly(root):
    # 512x512, 24 frames of painted content: a small fraction of the raw frames, and
    # smaller than zlib-compressed raw frames (the simpler alternative).
    loop = make_loop(frames=painted(24, 512, 512))
    key = Library(root).put(loop)
    stored = Library(root).meta(key)["bytes"]
    assert stored == (root / f"{key}.mkv").stat().st_size
    npz = io.BytesIO()
    np.savez_compressed(npz, frames=loop.frames)
    assert stored < loop.frames.nbytes / 10
    assert stored < len(npz.getvalue())


def test_meta_reads_no_frames(root, monkeypatch):
    lib = Library(root)
    loop = make_loop()
    key = lib.put(loop)
    lib.mark_played(key, when=1234.5)

    def no_decoding(*args, **kwargs):
        raise AssertionError("frames were decoded")

    monkeypatch.setattr("lofid.library._decode_frames", no_decoding)
    frames_file = root / f"{key}.mkv"
    frames_file.write_bytes(b"\0" * frames_file.stat().st_size)   # unreadable, same size
    meta = Library(root).meta(key)
    assert {k: meta[k] for k in loop.metadata()} == loop.metadata()
    assert meta["key"] == key
    assert meta["bytes"] == frames_file.stat().st_size
    assert meta["last_played"] == 1234.5
    assert [e["key"] for e in lib.entries()] == [key]


def test_missing_or_malformed_key_is_a_key_error(root):
    lib = Library(root)
    lib.put(make_loop())
    for key in ("0123456789abcdef", "../../etc/passwd", "", 42):
        with pytest.raises(KeyError):
            lib.get(key)
        with pytest.raises(KeyError):
            lib.meta(key)
        with pytest.raises(KeyError):
            lib.mark_played(key)
        with pytest.raises(KeyError):
            lib.remove(key)
        assert key not in lib


def test_remove(root):
    lib = Library(root)
    key = lib.put(make_loop())
    other = lib.put(make_loop(seed=2))
    lib.remove(key)
    assert key not in lib and other in lib
    assert not (root / f"{key}.mkv").exists() and not (root / f"{key}.json").exists()
    with pytest.raises(KeyError):
        lib.get(key)
    assert [e["key"] for e in Library(root).entries()] == [other]


def test_put_stores_a_loop_once(root):
    lib = Library(root)
    loop = make_loop()
    key = lib.put(loop)
    first = lib.meta(key)
    assert lib.put(make_loop()) == key
    assert len(lib) == 1
    assert lib.meta(key) == first


# ------------------------------------------------------------------ keys

@pytest.mark.slow
def test_key_is_stable_across_processes():
    spec = parse("snowy christmas bedroom, cozy")
    params = {"size": [64, 48], "fps": 12.0, "painter": 1}
    key = Library.key_for(spec, 7, "procedural", params)
    code = ("from lofid.library import Library; from lofid.scene import parse; "
            "print(Library.key_for(parse('snowy christmas bedroom, cozy'), 7, 'procedural', "
            "{'painter': 1, 'fps': 12.0, 'size': [64, 48]}))")
    # A fresh interpreter has a different str hash salt: the key must not depend on it.
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": "random"})
    assert other.stdout.strip() == key
    assert len(key) == 16 and int(key, 16) >= 0
    # Same inputs in other clothes: a tuple for a list, 12 for 12.0, the spec's dict.
    assert Library.key_for(spec.to_dict(), 7, "procedural",
                           {"size": (64, 48), "fps": 12, "painter": 1}) == key


def test_key_changes_with_everything_that_made_the_loop():
    spec = SceneSpec(scene="coffee_shop", motions=("rain", "steam"), season="winter",
                     weather="rain", time_of_day="night", setting="urban", mood=("cozy",))
    params = {"size": [64, 48], "frames": 6, "fps": 12.0, "painter": 1}
    base = Library.key_for(spec, 1, "procedural", params)
    variants = [
        Library.key_for(SceneSpec(**{**vars(spec), **change}), 1, "procedural", params)
        for change in ({"scene": "library"}, {"motions": ("rain",)}, {"season": None},
                       {"theme": "christmas"}, {"weather": "snow"}, {"time_of_day": "day"},
                       {"setting": "indoor"}, {"mood": ("calm",)})
    ]
    variants += [
        Library.key_for(spec, 2, "procedural", params),
        Library.key_for(spec, 1, "animatediff", params),
        Library.key_for(spec, 1, "procedural", {**params, "size": [48, 64]}),
        Library.key_for(spec, 1, "procedural", {**params, "frames": 7}),
        Library.key_for(spec, 1, "procedural", {**params, "fps": 12.5}),
        Library.key_for(spec, 1, "procedural", {**params, "painter": 2}),
        Library.key_for(spec, 1, "procedural", {**params, "lora": "ghibli"}),
        Library.key_for(spec, 1, "procedural", {}),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_put_uses_key_for(root):
    loop = make_loop(steps=4)
    assert Library(root).put(loop) == Library.key_for(loop.spec, loop.seed, loop.generator,
                                                      loop.params)


@pytest.mark.parametrize("args, word", [
    ((object(), 1, "procedural", {}), "spec"),
    ((parse("rain"), "1", "procedural", {}), "seed"),
    ((parse("rain"), True, "procedural", {}), "seed"),
    ((parse("rain"), 1, "", {}), "generator"),
    ((parse("rain"), 1, "procedural", [1]), "params"),
    ((parse("rain"), 1, "procedural", {"size": {1, 2}}), "params['size']"),
    ((parse("rain"), 1, "procedural", {"x": float("nan")}), "params['x']"),
])
def test_key_for_refuses_bad_input(args, word):
    with pytest.raises(ValueError, match=word.replace("[", r"\[")):
        Library.key_for(*args)


def test_bad_arguments_are_refused(root):
    with pytest.raises(ValueError, match="max_bytes"):
        Library(root, max_bytes=-1)
    with pytest.raises(ValueError, match="max_bytes"):
        Library(root, max_bytes="1G")
    lib = Library(root)
    with pytest.raises(ValueError, match="Loop"):
        lib.put(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="max_bytes"):
        lib.prune(-5)
    with pytest.raises(ValueError, match="coffe_shop"):
        lib.entries(scene="coffe_shop")
    key = lib.put(make_loop())
    with pytest.raises(ValueError, match="when"):
        lib.mark_played(key, when="now")


# ------------------------------------------------------------------ where it lives

def test_default_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOFID_LIBRARY", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    assert Library().root == tmp_path / "mine"
    monkeypatch.delenv("LOFID_LIBRARY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data" / "lofid" / "loops"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".local" / "share" / "lofid" / "loops"


# ------------------------------------------------------------------ queries

def test_entries_filter_by_scene_and_spec_newest_first(root):
    lib = Library(root)
    night = parse("rainy night in a coffee shop")
    morning = parse("coffee shop in the morning")
    study = parse("study room")
    keys = {
        "old_night": lib.put(make_loop(spec=night, seed=1, created=1000.0)),
        "new_night": lib.put(make_loop(spec=night, seed=2, created=3000.0)),
        "morning": lib.put(make_loop(spec=morning, seed=3, created=2000.0)),
        "study": lib.put(make_loop(spec=study, seed=4, created=4000.0)),
    }
    everything = [e["key"] for e in lib.entries()]
    assert everything == [keys[k] for k in ("study", "new_night", "morning", "old_night")]
    assert [e["key"] for e in lib.entries(scene="coffee_shop")] == [
        keys["new_night"], keys["morning"], keys["old_night"]]
    assert [e["key"] for e in lib.entries(spec=night)] == [keys["new_night"], keys["old_night"]]
    assert [e["key"] for e in lib.entries(spec=parse("rainy night, coffee shop"))] == [
        keys["new_night"], keys["old_night"]]
    assert lib.entries(scene="library") == []
    assert lib.entries(scene="study_room", spec=night) == []
    first = lib.entries()[0]
    assert first["spec"] == study.to_dict() and first["last_played"] is None
    first["spec"]["scene"] = "changed"        # callers get copies
    assert lib.entries()[0]["spec"] == study.to_dict()


# ------------------------------------------------------------------ playing and eviction

def test_mark_played_persists(root):
    lib = Library(root)
    key = lib.put(make_loop())
    before = time.time()
    lib.mark_played(key)
    played = Library(root).meta(key)["last_played"]
    assert before <= played <= time.time()
    assert leftovers(root) == []
    assert Library(root).get(key).frames.shape == (6, 36, 48, 3)


def test_prune_evicts_least_recently_played_first(root):
    lib = Library(root)
    k1 = lib.put(make_loop(seed=1, created=1000.0))
    k2 = lib.put(make_loop(seed=2, created=2000.0))
    k3 = lib.put(make_loop(seed=3, created=3000.0))
    k4 = lib.put(make_loop(seed=4, created=4000.0))
    lib.mark_played(k1, when=5000.0)
    lib.mark_played(k3, when=6000.0)
    size = {k: lib.meta(k)["bytes"] for k in (k1, k2, k3, k4)}
    assert lib.total_bytes() == sum(size.values())
    assert lib.prune() == []                 # no cap anywhere: nothing to do
    # Oldest by last play, a never-played loop counting from its creation:
    # k2 (made 2000), k4 (made 4000), k1 (played 5000), k3 (played 6000).
    later = Library(root)                    # play times survive a restart
    assert later.prune(sum(size.values()) - size[k2]) == [k2]
    assert later.prune(size[k3]) == [k4, k1]
    assert later.prune(0) == [k3]
    assert len(later) == 0 and later.total_bytes() == 0


def test_put_evicts_past_the_cap_but_never_the_new_loop(root):
    probe = Library(root / "probe")
    size = probe.meta(probe.put(make_loop(seed=1)))["bytes"]
    lib = Library(root, max_bytes=int(size * 2.5))   # room for two loops like it
    a = lib.put(make_loop(seed=1, created=1000.0))
    b = lib.put(make_loop(seed=2, created=2000.0))
    lib.mark_played(a, when=3000.0)
    c = lib.put(make_loop(seed=3, created=4000.0))
    assert sorted(e["key"] for e in lib.entries()) == sorted([a, c]) and b not in lib
    assert lib.total_bytes() <= lib.max_bytes
    tiny = Library(root, max_bytes=1)                # smaller than any loop
    d = tiny.put(make_loop(seed=4))
    assert [e["key"] for e in tiny.entries()] == [d]
    assert np.array_equal(tiny.get(d).frames, painted(seed=4))


# ------------------------------------------------------------------ crashes

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from lofid.library import Library
    from lofid.loop import Loop
    from lofid.scene import parse
    # Fresh noise in every frame is the slowest thing to encode losslessly.
    frames = np.random.default_rng(0).integers(0, 256, (300, 270, 480, 3), dtype=np.uint8)
    loop = Loop(frames=frames, fps=12.0, spec=parse("rainy window"), seed=99,
                generator="procedural", params={"size": [480, 270]},
                metrics={"seam_ratio": 1.0, "motion": 1.0, "flicker": 0.0})
    print(Library.key_for(loop.spec, loop.seed, loop.generator, loop.params), flush=True)
    Library(sys.argv[1]).put(loop)
    print("finished", flush=True)
""")


@pytest.mark.slow
def test_a_write_killed_part_way_leaves_nothing_half_written(root, caplog):
    survivor = Library(root).put(make_loop())
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)],
                             stdout=subprocess.PIPE, text=True)
    try:
        key = child.stdout.readline().strip()
        # Kill it while its frames are being written: a temporary file that has grown.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            temps = [p for p in root.glob(".tmp-*") if p.stat().st_size > 256 * 1024]
            if temps:
                break
            assert child.poll() is None, "the writer finished before it could be killed"
            time.sleep(0.002)
        else:
            pytest.fail("the writer never started writing")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert leftovers(root), "the kill left no temporary file to clean"

    with caplog.at_level(logging.INFO, logger=LOG):
        lib = Library(root)
    assert leftovers(root) == []
    assert "temporary" in caplog.text
    assert [e["key"] for e in lib.entries()] == [survivor]
    assert key not in lib and len(lib) == 1
    with pytest.raises(KeyError):
        lib.get(key)
    np.testing.assert_array_equal(lib.get(survivor).frames, painted(seed=1))


def test_a_live_writers_temporary_file_is_left_alone(root):
    Library(root)
    live = root / ".tmp-0123456789abcdef-1-abcd.mkv"
    with open(live, "wb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)      # as a writer holds it while it writes
        fh.write(b"partial")
        Library(root)
        assert live.exists()
    Library(root)                           # released: its writer is gone
    assert not live.exists()


# ------------------------------------------------------------------ damage

def test_broken_files_found_at_start_are_moved_aside(root, caplog):
    lib = Library(root)
    keys = [lib.put(make_loop(seed=s)) for s in range(1, 6)]
    truncated, garbage, no_frames, no_meta, good = keys
    frames = root / f"{truncated}.mkv"
    frames.write_bytes(frames.read_bytes()[: frames.stat().st_size // 2])
    (root / f"{garbage}.json").write_text('{"key": "' + garbage + '", "spec": ')
    (root / f"{no_frames}.mkv").unlink()
    (root / f"{no_meta}.json").unlink()

    with caplog.at_level(logging.WARNING, logger=LOG):
        lib = Library(root)
    assert [e["key"] for e in lib.entries()] == [good]
    assert len(lib) == 1
    for key in (truncated, garbage, no_frames, no_meta):
        assert key not in lib
        assert key in caplog.text
        with pytest.raises(KeyError):
            lib.get(key)
    aside = sorted(p.name for p in (root / "corrupt").iterdir())
    # Unreadable metadata goes first, which leaves its frames without metadata.
    assert aside == sorted([f"{truncated}.mkv", f"{truncated}.json", f"{garbage}.json",
                            f"{garbage}.mkv", f"{no_frames}.json", f"{no_meta}.mkv"])
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == LOG)
    np.testing.assert_array_equal(lib.get(good).frames, painted(seed=5))


def test_metadata_of_another_kind_is_moved_aside(root, caplog):
    lib = Library(root)
    key = lib.put(make_loop())
    meta = json.loads((root / f"{key}.json").read_text())
    meta["spec"]["scene"] = "spaceship"       # a spec this version cannot read
    (root / f"{key}.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger=LOG):
        lib = Library(root)
    assert len(lib) == 0
    assert "spaceship" in caplog.text


def test_metadata_damaged_while_running_is_moved_aside(root, caplog):
    lib = Library(root)
    damaged, good = lib.put(make_loop(seed=1)), lib.put(make_loop(seed=2))
    (root / f"{damaged}.json").write_bytes(b"\x00\xff not json")
    with caplog.at_level(logging.WARNING, logger=LOG):
        assert [e["key"] for e in lib.entries()] == [good]
    assert damaged in caplog.text
    assert sorted(p.name for p in (root / "corrupt").iterdir()) == [
        f"{damaged}.json", f"{damaged}.mkv"]
    with pytest.raises(KeyError):
        lib.get(damaged)


def test_damaged_frames_are_moved_aside_at_get(root, caplog):
    lib = Library(root)
    flipped, undecodable, good = (lib.put(make_loop(seed=s)) for s in (1, 2, 3))
    # Same size, one byte changed: passes the cheap start-up check, fails the checksum.
    path = root / f"{flipped}.mkv"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    # Not H.264 at all, with metadata that vouches for it: fails in the decoder.
    junk = b"this is not a video file" * 40
    (root / f"{undecodable}.mkv").write_bytes(junk)
    meta = json.loads((root / f"{undecodable}.json").read_text())
    meta["bytes"] = meta["storage"]["bytes"] = len(junk)
    meta["storage"]["sha256"] = hashlib.sha256(junk).hexdigest()
    (root / f"{undecodable}.json").write_text(json.dumps(meta))

    lib = Library(root)
    assert len(lib) == 3
    for key, why in ((flipped, "checksum"), (undecodable, "decode")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOG):
            with pytest.raises(CorruptLoopError, match=why) as caught:
                lib.get(key)
        assert isinstance(caught.value, KeyError) and isinstance(caught.value, LibraryError)
        assert key in str(caught.value)
        assert key in caplog.text
        assert key not in lib
        assert (root / "corrupt" / f"{key}.mkv").exists()
    assert [e["key"] for e in Library(root).entries()] == [good]


# ------------------------------------------------------------------ two libraries, one folder

def test_two_libraries_on_one_folder(root):
    a, b = Library(root), Library(root)
    first = a.put(make_loop(seed=1))
    second = b.put(make_loop(seed=2))
    assert sorted(e["key"] for e in a.entries()) == sorted([first, second])
    assert a.meta(first)["last_played"] is None
    b.mark_played(first, when=42.0)
    assert a.meta(first)["last_played"] == 42.0      # seen at once, not cached stale
    a.meta(second)
    b.remove(second)                                 # vanishes after a listed it
    with pytest.raises(KeyError) as caught:
        a.get(second)
    assert not isinstance(caught.value, CorruptLoopError)
    assert [e["key"] for e in a.entries()] == [first]
    with pytest.raises(KeyError):
        a.mark_played(second)
    assert not (root / "corrupt").exists()


def test_writers_in_parallel_threads(root):
    libraries = [Library(root), Library(root)]
    loops = [make_loop(seed=s, frames=painted(4, 24, 32, seed=s)) for s in range(8)]
    keys = [None] * len(loops)

    def write(i):
        lib = libraries[i % 2]
        keys[i] = lib.put(loops[i])
        lib.mark_played(keys[i])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(loops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = Library(root)
    assert sorted(e["key"] for e in again.entries()) == sorted(keys)
    assert all(e["last_played"] is not None for e in again.entries())
    assert leftovers(root) == [] and not (root / "corrupt").exists()
    for key, loop in zip(keys, loops):
        np.testing.assert_array_equal(again.get(key).frames, loop.frames)


# ------------------------------------------------------------------ opening a loop to play at once

def test_open_hands_the_loop_over_while_its_frames_decode(root):
    lib = Library(root)
    stored = make_loop(frames=painted(n=24, h=72, w=96))
    key = lib.put(stored)
    loop = lib.open(key)
    assert loop.key == key and loop.spec == stored.spec and loop.fps == stored.fps
    assert loop.metrics["seam_ratio"] == pytest.approx(stored.metrics["seam_ratio"])
    loop.wait_frame(0)
    assert np.array_equal(loop.frames[0], stored.frames[0])
    loop.wait_frame(23)
    assert np.array_equal(loop.frames, stored.frames)            # bit-exact, in place
    with pytest.raises(TimeoutError):
        lib.open(key).wait_frame(24, timeout=0.5)               # there is no frame 24


def test_a_standby_starts_a_loop_with_its_first_frames_already_there(root):
    lib = Library(root)
    stored = make_loop(frames=painted(n=12))
    key = lib.put(stored)
    standby = lib.standby(key, 3)
    assert standby.count == 3 and standby.frames.shape == stored.frames.shape
    assert np.array_equal(standby.frames[:3], stored.frames[:3])
    assert lib.standby(key, 50).count == 12                      # never more than it has
    loop = lib.open(key, standby=standby)
    assert loop.frames is standby.frames                          # no copy
    loop.wait_frame(11)
    assert np.array_equal(loop.frames, stored.frames)
    other = lib.put(make_loop(seed=2))
    with pytest.raises(ValueError, match="standby"):
        lib.open(other, standby=lib.standby(key, 2))
    with pytest.raises(ValueError, match="count"):
        lib.standby(key, 0)
    with pytest.raises(KeyError):
        lib.open("0123456789abcdef")


def test_open_finds_damaged_frames_after_playing_them_and_moves_them_aside(root, caplog):
    lib = Library(root)
    flipped, undecodable = (lib.put(make_loop(seed=s)) for s in (1, 2))
    path = root / f"{flipped}.mkv"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    (root / f"{undecodable}.mkv").write_bytes(b"x" * (root / f"{undecodable}.mkv").stat().st_size)
    with caplog.at_level(logging.WARNING, logger=LOG):
        for key in (flipped, undecodable):
            loop = lib.open(key)
            with pytest.raises(CorruptLoopError):
                loop.wait_frame(len(loop.frames))                # waits for the whole check
            assert isinstance(loop.loader.error, CorruptLoopError)
            assert key not in lib and (root / "corrupt" / f"{key}.mkv").exists()


# ------------------------------------------------------------------ what a loop from the library carries

def test_loops_from_the_library_carry_their_key_as_a_field_of_their_own(root):
    # key and loader are declared fields of Loop (not attributes stuck on at run
    # time): a loop gets them from the library whichever way it is read, and a loop
    # made anywhere else has them too, empty, with wait_frame returning at once.
    lib = Library(root)
    stored = make_loop(frames=painted(n=8))
    assert stored.key is None and stored.loader is None
    stored.wait_frame(7)
    key = lib.put(stored)
    got = lib.get(key)
    assert got.key == key and got.loader is None
    opened = lib.open(key)
    assert opened.key == key and opened.loader is not None
    opened.wait_frame(7)
    assert np.array_equal(opened.frames, stored.frames)
    assert "key" not in got.metadata()                         # where it is kept, not what it is
    with pytest.raises(ValueError, match="key"):
        Loop.from_metadata(got.metadata(), got.frames, got.spec, key=42)
