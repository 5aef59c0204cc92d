"""The `lofid` command as a user runs it: a real process, real files read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image


def lofid(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "lofid.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=300)


SMALL = ["--size", "160x90", "--frames", "12", "--fps", "12", "--seed", "3"]


def test_help_starts_without_torch():
    code = ("import sys, lofid.cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "generate" in out and "HEAVY []" in out


def test_generate_writes_a_playable_seamless_loop(tmp_path):
    out = tmp_path / "rain.mp4"
    r = lofid("generate", "rainy night, coffee shop, jazz lofi", "-o", str(out), *SMALL)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and "seam ratio" in r.stdout and "coffee shop" in r.stdout
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        assert (s.codec_context.width, s.codec_context.height) == (160, 90)
        assert float(s.average_rate) == pytest.approx(12)
    assert len(frames) == 12
    # The picture moves (it is a loop, not a still).
    assert np.abs(frames[0].astype(int) - frames[6].astype(int)).mean() > 0.05
    # The seam ratio printed is the loop's, and within the painter's bound.
    ratio = float(r.stdout.split("seam ratio")[1].split(",")[0])
    assert ratio <= 1.05


def test_generate_keeps_the_loop_in_the_library(tmp_path):
    lib = tmp_path / "lib"
    r = lofid("--library", str(lib), "generate", "library, autumn", "-o",
              str(tmp_path / "a.gif"), *SMALL)
    assert r.returncode == 0, r.stderr
    listed = lofid("--library", str(lib), "library", "list", "--json")
    entries = json.loads(listed.stdout)
    assert len(entries) == 1 and entries[0]["spec"]["scene"] == "library"
    key = entries[0]["key"]
    shown = json.loads(lofid("--library", str(lib), "library", "show", key[:8]).stdout)
    assert shown["seed"] == 3 and shown["generator"] == "procedural"
    sheet = tmp_path / "sheet.png"
    r = lofid("--library", str(lib), "library", "preview", key, "-o", str(sheet))
    assert r.returncode == 0, r.stderr
    with Image.open(sheet) as im:
        assert im.width >= 160 * 2 and im.height >= 90
    r = lofid("--library", str(lib), "library", "prune", "--max-size", "0")
    assert r.returncode == 0 and "removed 1" in r.stdout
    assert json.loads(lofid("--library", str(lib), "library", "list", "--json").stdout) == []


def test_repeat_writes_the_loop_n_times(tmp_path):
    out = tmp_path / "twice.webm"
    r = lofid("generate", "rooftop night", "-o", str(out), "--repeat", "3", *SMALL)
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 36


def test_image_is_animated(tmp_path):
    picture = tmp_path / "still.png"
    rng = np.random.default_rng(0)
    still = np.repeat(np.linspace(30, 200, 120, dtype=np.uint8)[None, :, None], 80, 0)
    still = np.repeat(still, 3, 2) + rng.integers(0, 5, (80, 120, 3), dtype=np.uint8)
    Image.fromarray(still).save(picture)
    out = tmp_path / "mine.mp4"
    r = lofid("generate", "rain, night", "--image", str(picture), "-o", str(out),
              "--frames", "12", "--seed", "1")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert frames[0].shape == (80, 120, 3)  # the picture's own size
    assert np.abs(frames[0].astype(int) - still.astype(int)).mean() < 25


@pytest.mark.parametrize("args, named", [
    (["--size", "12x"], "--size"),
    (["--size", "axb"], "--size"),
    (["--frames", "1"], "--frames"),
    (["--generator", "dalle"], "--generator"),
    (["--image", "/nonexistent/picture.png"], "--image"),
    (["--fps", "0"], "--fps"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, named):
    r = lofid("generate", "study", "-o", str(tmp_path / "x.mp4"), *args)
    assert r.returncode == 2
    assert named in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


def test_unwritable_extension_and_not_an_image(tmp_path):
    r = lofid("generate", "study", "-o", str(tmp_path / "x.avi"))
    assert r.returncode == 2 and ".avi" in r.stderr and ".mp4" in r.stderr
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture at all")
    r = lofid("generate", "study", "-o", str(tmp_path / "x.mp4"), "--image", str(junk))
    assert r.returncode == 2 and "junk.png" in r.stderr and "Traceback" not in r.stderr


def test_unknown_library_key(tmp_path):
    r = lofid("--library", str(tmp_path), "library", "show", "feedbeef")
    assert r.returncode == 2 and "feedbeef" in r.stderr


def test_generate_with_animatediff_end_to_end(tmp_path):
    """`lofid generate --generator animatediff` on tiny local models: the real loading,
    denoising (circular context windows) and export code, on CPU, no network."""
    sys.path.insert(0, os.path.dirname(__file__))
    from tiny_models import tiny_motion_adapter_dir, tiny_pipeline_dir
    model = tiny_pipeline_dir(tmp_path / "models")
    adapter = tiny_motion_adapter_dir(tmp_path / "models")
    out = tmp_path / "ad.mp4"
    r = lofid("generate", "rainy window, night", "-o", str(out), "--generator", "animatediff",
              "--model", str(model), "--motion-adapter", str(adapter), "--size", "64x64",
              "--frames", "8", "--fps", "8", "--steps", "2", "--seed", "1", "--no-library")
    assert r.returncode == 0, r.stderr
    assert "seam ratio" in r.stdout
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 8
    # A model path that is not a model: one line, exit 2.
    bad = tmp_path / "not-a-model.safetensors"
    bad.write_bytes(b"nope")
    r = lofid("generate", "x", "-o", str(tmp_path / "b.mp4"), "--generator", "animatediff",
              "--model", str(bad), "--motion-adapter", str(adapter), "--size", "64x64")
    assert r.returncode == 2 and "not-a-model.safetensors" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # Painter-only options are refused for it, and AnimateDiff ones for the painter.
    r = lofid("generate", "x", "-o", str(tmp_path / "c.mp4"), "--steps", "4",
              "--generator", "procedural")
    assert r.returncode == 2 and "--steps" in r.stderr


def _commands(parser, prefix=()):
    """Every command path of the parser: ("run",), ("library", "list"), ..."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _commands(sub, prefix + (name,))


def test_every_command_prints_its_help(capsys):
    """`lofid ... --help` for every command: the text, exit 0, never a traceback
    (a help text with a bare % once broke argparse's formatting)."""
    from lofid.cli import build_parser, main
    commands = list(_commands(build_parser()))
    assert ("train", "motion") in commands and ("library", "list") in commands
    for command in commands:
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0, command
        assert "usage: lofid" in capsys.readouterr().out, command
