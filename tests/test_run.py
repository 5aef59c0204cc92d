"""`lofid run` as a user runs it: a real process, real files read back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import av
import numpy as np
import pytest
from helpers import LOFID, lofid, reap, wait_for

# Every test here runs lofid as a process.
pytestmark = pytest.mark.slow

SMALL = ["--size", "320x180", "--scene", "rainy night, coffee shop"]


def read_back(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        kinds = {s.type for s in c.streams}
        audio = c.streams.audio[0] if c.streams.audio else None
        frames, keys = [], []
        for packet in c.demux(v):
            if packet.pts is None:
                continue
            if packet.is_keyframe:
                keys.append(float(packet.pts * v.time_base))
            for f in packet.decode():
                frames.append(f.to_ndarray(format="rgb24"))
        return dict(frames=frames, keys=keys, kinds=kinds,
                    audio=(audio.codec_context.name, audio.codec_context.sample_rate,
                           audio.codec_context.channels) if audio else None,
                    size=(v.codec_context.width, v.codec_context.height))


def test_run_writes_a_stream_file_with_crossfades_and_audio(tmp_path):
    out = tmp_path / "stream.mp4"
    r = lofid("--library", str(tmp_path / "lib"), "run", "-o", str(out), "--duration", "8", "--rotate", "3", "--crossfade", "1",
              *SMALL)
    assert r.returncode == 0, r.stderr
    assert "crossfade" in r.stderr
    got = read_back(out)
    assert got["size"] == (320, 180)
    assert len(got["frames"]) == 8 * 30
    assert got["audio"] == ("aac", 48000, 2)
    gaps = np.diff(got["keys"])
    assert got["keys"][0] == 0 and gaps.max() <= 2.0 + 1e-6
    # The picture changes over time: more than one loop was shown.
    f = np.stack(got["frames"]).astype(np.int16)
    assert np.abs(f[10] - f[-10]).mean() > 1.0


def test_one_bad_output_does_not_stop_the_others(tmp_path):
    out = tmp_path / "ok.mkv"
    r = lofid("--library", str(tmp_path / "lib"), "run", "-o", "ftp://example.org/x", "-o", str(out), "--duration", "2", *SMALL,
              )
    assert r.returncode == 0, r.stderr
    assert "ftp://example.org/x" in r.stderr
    assert len(read_back(out)["frames"]) == 60


@pytest.mark.parametrize("args, named", [
    (["-o", "ftp://example.org/x"], "ftp://example.org/x"),
    (["-o", "/nonexistent/folder/out.mp4"], "/nonexistent/folder"),
    (["-o", "null", "--size", "1921x1080"], "size"),
    (["-o", "null", "--fps", "29"], "fps"),
])
def test_bad_input_names_what_was_wrong(tmp_path, args, named):
    r = lofid("run", *args, "--duration", "1")
    assert r.returncode == 2
    assert named in r.stderr and "Traceback" not in r.stderr


def test_no_generate_with_an_empty_library_is_a_clear_error(tmp_path):
    r = lofid("--library", str(tmp_path / "lib"), "run", "-o", "null", "--duration", "1", "--no-generate", "--scene", "library",
              )
    assert r.returncode == 2 and "library" in r.stderr and "Traceback" not in r.stderr


def test_no_output_and_no_display_says_how_to_choose(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = lofid("run", "--duration", "1", env=env, timeout=60)
    assert r.returncode == 2 and "--output" in r.stderr


def test_config_file_keys_are_used_and_checked(tmp_path):
    out = tmp_path / "from-config.mkv"
    cfg = tmp_path / "lofid.toml"
    cfg.write_text(f'outputs = ["{out}"]\nduration = 2\nsize = "320x180"\nfps = 24\n')
    r = lofid("run", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert len(read_back(out)["frames"]) == 48
    cfg.write_text('rotaet = 10\n')
    r = lofid("run", "--config", str(cfg), "-o", "null")
    assert r.returncode == 2 and "rotaet" in r.stderr


def test_ctrl_c_leaves_a_playable_file(tmp_path):
    out = tmp_path / "interrupted.mp4"
    # Once the picture is flowing, interrupt as a user would.
    p, _ = _playing(tmp_path, out, socket=False)
    try:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        reap(p)
    assert p.returncode == 0, err
    assert len(read_back(out)["frames"]) > 10


def test_run_makes_its_loops_with_animatediff_from_the_config(tmp_path):
    sys.path.insert(0, os.path.dirname(__file__))
    from tiny_models import tiny_motion_adapter_dir, tiny_pipeline_dir
    model = tiny_pipeline_dir(tmp_path / "models")
    adapter = tiny_motion_adapter_dir(tmp_path / "models")
    cfg = tmp_path / "lofid.toml"
    out = tmp_path / "ad.mkv"
    cfg.write_text(f'generator = "animatediff"\nmodel = "{model}"\nmotion_adapter = "{adapter}"\n'
                   f'steps = 2\nloop_frames = 8\nloop_size = "64x64"\nloop_fps = 10\n'
                   f'outputs = ["{out}"]\nsize = "160x90"\nduration = 2\n')
    r = lofid("--library", str(tmp_path / "lib"), "run", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "generator animatediff" in r.stderr
    assert len(read_back(out)["frames"]) == 60


def _playing(tmp_path, out, *extra, socket=True):
    """`lofid run -o OUT --realtime` (with a control socket unless socket=False),
    returned with its socket once the picture is flowing into OUT."""
    sock = tmp_path / "run" / "lofid.sock" if socket else None
    where = ["--socket", str(sock)] if socket else []
    p = subprocess.Popen([*LOFID, "--library", str(tmp_path / "lib"), "run", "-o", str(out),
                          *SMALL, "--realtime", *where, *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: p.poll() is not None or (out.exists() and out.stat().st_size > 20000),
                 timeout=60)
        assert p.poll() is None, p.communicate()[1]
    except BaseException:
        reap(p)
        raise
    return p, sock


def test_sigterm_stops_cleanly_and_removes_the_socket(tmp_path):
    out = tmp_path / "terminated.mkv"
    p, sock = _playing(tmp_path, out)
    try:
        assert sock.exists()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        reap(p)
    assert p.returncode == 0, err
    assert "stopping" in err and not sock.exists()
    assert len(read_back(out)["frames"]) > 10


