"""Malformed invocations and config files, across every command: each runs `python -m
lofid.cli`'s entry point in a process of its own (forked from one that has imported
lofid once: tests/cli_forks.py), and each must end in exit code 2 (or what the README
says for it), one line on stderr naming what was wrong, and no traceback.

Every row fails at validation, before any work: nothing is painted, encoded, trained
or downloaded. A row whose input slips through does real work instead, which the
memory limit and the timeout below turn into a failure rather than a stalled machine.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from cli_forks import Forks

# A run that is wrongly accepted must fail, not fill the machine's memory or hang.
MEMORY_LIMIT = 4 << 30
TIMEOUT = 60


def _png(path, width: int, height: int, rows: bool = True) -> None:
    """A 1-bit grey PNG of `width` x `height` written by hand: a huge picture in a
    small file (a decompression bomb). Without `rows`, only the header is valid."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\0" * (1 + (width + 7) // 8)
    body = zlib.compress(row * height, 9) if rows else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files the rows point at, a library holding one loop, and an environment with no
    daemon, no display, no token and no models."""
    w = tmp_path_factory.mktemp("world")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "LOFID_TOKEN", "LOFID_MODELS",
                        "HF_HUB_CACHE", "XDG_CACHE_HOME")}
    env.update(LOFID_LIBRARY=str(w / "lib"), XDG_CONFIG_HOME=str(w / "config"),
               XDG_DATA_HOME=str(w / "data"), HF_HOME=str(w / "hf"),
               XDG_RUNTIME_DIR=str(w / "run"), HF_HUB_OFFLINE="1")
    (w / "run").mkdir(mode=0o700)
    r = subprocess.run([sys.executable, "-m", "lofid.cli", "generate", "library, autumn",
                        "-o", str(w / "made.gif"), "--size", "32x32", "--frames", "4", "--seed", "1"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    listed = subprocess.run([sys.executable, "-m", "lofid.cli", "library", "list", "--json"],
                            capture_output=True, text=True, env=env, timeout=60)
    key = json.loads(listed.stdout)[0]["key"]

    os.mkfifo(w / "fifo")
    os.mkfifo(w / "fifo.toml")
    os.mkfifo(w / "fifo_token", 0o600)
    _png(w / "big.png", 8000, 8000)                 # 64 MP: a picture, but too big for a loop
    _png(w / "bomb.png", 20000, 20000, rows=False)  # 400 MP: Pillow calls it a bomb
    _png(w / "warnbomb.png", 10000, 10000)          # 100 MP: past Pillow's warning
    Image.new("RGB", (20, 20), (90, 60, 40)).save(w / "tiny.png")
    (w / "junk.txt").write_text("not a picture, not a model\n")
    (w / "afile").write_text("a file, not a folder\n")
    (w / "bad.toml").write_text("this is = = not toml\n")
    (w / "open_token").write_text("a-long-enough-token-for-lofid\n")
    os.chmod(w / "open_token", 0o644)
    (w / "short_token").write_text("short\n")
    os.chmod(w / "short_token", 0o600)
    (w / "src").mkdir()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(w / "src" / "one.png")
    (w / "emptysrc").mkdir()
    Image.new("RGB", (20, 20), (90, 60, 40)).save(w / "one.gif")        # one frame: no loop
    Image.new("RGB", (8, 8)).save(w / "small.gif", save_all=True,      # 8x8: under 16x16
                                  append_images=[Image.new("RGB", (8, 8), (9, 9, 9))])
    (w / "mixed").mkdir()
    Image.new("RGB", (32, 32)).save(w / "mixed" / "a1.png")
    Image.new("RGB", (32, 34)).save(w / "mixed" / "a2.png")
    forks = Forks(env, MEMORY_LIMIT, TIMEOUT)
    yield {"w": str(w), "key": key, "env": env, "forks": forks}
    forks.close()


G = ["generate", "study", "-o", "{w}/g.mp4"]
R = ["run", "-o", "{w}/r.mp4", "--duration", "1", "--size", "64x36"]
RC = ["run", "--config", "{cfg}"]
# A config row: these keys plus the row's own (which replaces one of the same name).
RUN_BASE = {"outputs": '["{w}/c.mp4"]', "duration": "1", "size": '"64x36"'}
PV = ["library", "preview", "{key}", "-o", "{w}/sheet.png"]
TCP = ["ctl", "--tcp", "127.0.0.1:1"]

# (id, argv, config lines or None, text the one line must hold, exit code)
ROWS = [
    # lofid generate
    ("gen-size-empty", G + ["--size", ""], None, "--size", 2),
    ("gen-size-odd-mp4", G + ["--size", "321x181"], None, "--size", 2),
    ("gen-size-three-parts", G + ["--size", "1280x720x3"], None, "--size", 2),
    ("gen-size-huge", G + ["--size", "99999x99999"], None, "--size", 2),
    ("gen-size-below-painter", G + ["--size", "16x16"], None, "--size", 2),
    ("gen-frames-float-text", G + ["--frames", "1e8"], None, "--frames", 2),
    ("gen-frames-1e8", G + ["--frames", "100000000"], None, "--frames", 2),
    ("gen-frames-memory", G + ["--frames", "2000", "--size", "1920x1080"], None, "--frames", 2),
    ("gen-fps-nan", G + ["--fps", "nan"], None, "--fps", 2),
    ("gen-fps-inf", G + ["--fps", "inf"], None, "--fps", 2),
    ("gen-repeat-0", G + ["--repeat", "0"], None, "--repeat", 2),
    ("gen-repeat-huge", G + ["--repeat", "100000000"], None, "--repeat", 2),
    ("gen-seed-text", G + ["--seed", "abc"], None, "--seed", 2),
    ("gen-generator-empty", G + ["--generator", ""], None, "--generator", 2),
    ("gen-animatediff-no-weights", G + ["--generator", "animatediff"], None, "--model", 2),
    ("gen-animatediff-missing-model",
     G + ["--generator", "animatediff", "--model", "{w}/nomodel", "--motion-adapter", "{w}/noadapter"],
     None, "nomodel", 2),
    ("gen-steps-procedural", G + ["--generator", "procedural", "--steps", "5"], None, "--steps", 2),
    ("gen-lora-procedural", G + ["--generator", "procedural", "--lora", "x:abc"], None, "--lora", 2),
    ("gen-image-folder", G + ["--image", "{w}"], None, "--image", 2),
    ("gen-image-fifo", G + ["--image", "{w}/fifo"], None, "--image", 2),
    ("gen-image-8000", G + ["--image", "{w}/big.png"], None, "--image", 2),
    ("gen-image-bomb", G + ["--image", "{w}/bomb.png"], None, "--image", 2),
    ("gen-image-bomb-warning", G + ["--image", "{w}/warnbomb.png", "--size", "64x64"], None, "--image", 2),
    ("gen-image-too-small", G + ["--image", "{w}/tiny.png"], None, "--image", 2),
    ("gen-output-no-folder", ["generate", "study", "-o", "{w}/nodir/g.mp4"], None, "nodir", 2),
    ("gen-output-no-extension", ["generate", "study", "-o", "{w}/g"], None, "-o", 2),
    ("gen-output-missing", ["generate", "study"], None, "--output", 2),
    ("gen-config-missing", G + ["--config", "{w}/none.toml"], None, "none.toml", 2),
    ("gen-config-not-toml", G + ["--config", "{w}/bad.toml"], None, "bad.toml", 2),
    ("gen-config-fifo", G + ["--config", "{w}/fifo.toml"], None, "fifo.toml", 2),
    ("gen-config-steps-text", G + ["--config", "{cfg}"], ['steps = "many"'], "steps", 2),
    ("gen-config-generator-number", G + ["--config", "{cfg}"], ["generator = 5"], "generator", 2),
    ("gen-config-unknown-key", G + ["--config", "{cfg}"], ["colour = 1"], "colour", 2),
    # lofid run: flags
    ("run-size-empty", R + ["--size", ""], None, "size", 2),
    ("run-size-odd", R + ["--size", "321x181"], None, "size", 2),
    ("run-fps-23", R + ["--fps", "23"], None, "fps", 2),
    ("run-fps-fraction", R + ["--fps", "2.5"], None, "--fps", 2),
    ("run-duration-negative", R + ["--duration", "-1"], None, "duration", 2),
    ("run-duration-nan", R + ["--duration", "nan"], None, "duration", 2),
    ("run-duration-inf", R + ["--duration", "inf"], None, "duration", 2),
    ("run-rotate-0", R + ["--rotate", "0"], None, "rotate", 2),
    ("run-rotate-inf", R + ["--rotate", "inf"], None, "rotate", 2),
    ("run-crossfade-31", R + ["--crossfade", "31"], None, "crossfade", 2),
    ("run-bitrate-10", R + ["--bitrate", "10"], None, "bitrate", 2),
    ("run-fit-unknown", R + ["--fit", "wobble"], None, "--fit", 2),
    ("run-output-empty", ["run", "-o", "", "--duration", "1"], None, "output", 2),
    ("run-no-output-no-display", ["run", "--duration", "1"], None, "--output", 2),
    ("run-library-is-a-file", ["--library", "{w}/afile"] + R, None, "afile", 2),
    ("run-config-missing", R + ["--config", "{w}/none.toml"], None, "none.toml", 2),
    ("run-config-fifo", R + ["--config", "{w}/fifo.toml"], None, "fifo.toml", 2),
    # lofid run: config keys
    ("cfg-outputs-number", RC, ["outputs = 5"], "outputs", 2),
    ("cfg-outputs-text", RC, ['outputs = "{w}/c.mp4"'], "outputs", 2),
    ("cfg-outputs-table", RC, ["outputs = {{ a = 1 }}"], "outputs", 2),
    ("cfg-audio-number", RC, ["audio = 5"], "audio", 2),
    ("cfg-audio-list-of-numbers", RC, ["audio = [5]"], "audio", 2),
    ("cfg-socket-number", RC, ["socket = 5"], "socket", 2),
    ("cfg-library-number", RC, ["library = 5"], "library", 2),
    ("cfg-library-empty", RC, ['library = ""'], "library", 2),
    ("cfg-duration-true", RC, ["duration = true"], "duration", 2),
    ("cfg-duration-text", RC, ['duration = "10"'], "duration", 2),
    ("cfg-duration-nan", RC, ["duration = nan"], "duration", 2),
    ("cfg-rotate-true", RC, ["rotate = true"], "rotate", 2),
    ("cfg-crossfade-text", RC, ['crossfade = "3"'], "crossfade", 2),
    ("cfg-fps-text", RC, ['fps = "30"'], "fps", 2),
    ("cfg-size-number", RC, ["size = 5"], "size", 2),
    ("cfg-loop-size-16", RC, ['loop_size = "16x16"'], "loop_size", 2),
    ("cfg-loop-frames-1e9-int", RC, ["loop_frames = 1000000000"], "loop_frames", 2),
    ("cfg-loop-frames-1e9-float", RC, ["loop_frames = 1e9"], "loop_frames", 2),
    ("cfg-loop-frames-true", RC, ["loop_frames = true"], "loop_frames", 2),
    ("cfg-loop-frames-memory", RC, ["loop_frames = 3000", 'loop_size = "1920x1080"'], "loop_frames", 2),
    ("cfg-loop-fps-true", RC, ["loop_fps = true"], "loop_fps", 2),
    ("cfg-bitrate-float", RC, ["bitrate = 4500.5"], "bitrate", 2),
    ("cfg-fit-number", RC, ["fit = 5"], "fit", 2),
    ("cfg-generate-text", RC, ['generate = "yes"'], "generate", 2),
    ("cfg-generator-animatediff-no-weights", RC, ['generator = "animatediff"'], "model", 2),
    ("cfg-generator-unknown", RC, ['generator = "dalle"'], "generator", 2),
    ("cfg-model-number", RC, ['generator = "animatediff"', "model = 5"], "model", 2),
    ("cfg-steps-true", RC, ["steps = true"], "steps", 2),
    ("cfg-guidance-nan", RC, ["guidance = nan"], "guidance", 2),
    ("cfg-scheduler-unknown", RC, ['scheduler = "bogus"'], "scheduler", 2),
    ("cfg-loop-method-unknown", RC, ['loop_method = "spiral"'], "loop_method", 2),
    ("cfg-preset-unknown", RC, ['preset = "turbo"'], "preset", 2),
    ("cfg-loras-number", RC, ["loras = 5"], "loras", 2),
    ("cfg-motion-loras-text", RC, ['motion_loras = "x"'], "motion_loras", 2),
    ("cfg-max-seam-ratio-true", RC, ["max_seam_ratio = true"], "max_seam_ratio", 2),
    ("cfg-live-crossfade-text", RC, ['live_crossfade = "no"'], "live_crossfade", 2),
    ("cfg-min-scene-negative", RC, ["min_scene = -1"], "min_scene", 2),
    ("cfg-standby-scenes-100", RC, ["standby_scenes = 100"], "standby_scenes", 2),
    ("cfg-control-tcp-nonsense", RC, ['control_tcp = "nonsense"'], "control_tcp", 2),
    ("cfg-control-tcp-no-token", RC, ['control_tcp = "127.0.0.1:7601"'], "control_token_file", 2),
    ("cfg-scene-number", RC, ["scene = 5"], "scene", 2),
    ("cfg-close-stops-text", RC, ['close_stops = "yes"'], "close_stops", 2),
    ("cfg-unknown-key", RC, ['colour = "red"'], "colour", 2),
    ("cfg-schedule-bad-time", RC, ['schedule = [{{ at = "25:00", scene = "study" }}]'], "schedule[0].at", 2),
    ("cfg-schedule-unknown-zone", RC,
     ['schedule = [{{ at = "07:00", scene = "study", timezone = "Mars/Olympus" }}]'], "Mars/Olympus", 2),
    ("cfg-schedule-empty-scene", RC, ['schedule = [{{ at = "07:00", scene = "" }}]'], "schedule[0].scene", 2),
    ("cfg-schedule-same-time", RC,
     ['schedule = [{{ at = "07:00", scene = "a" }}, {{ at = "07:00", scene = "b" }}]'], "same time", 2),
    ("cfg-schedule-not-tables", RC, ['schedule = "07:00 study"'], "schedule", 2),
    ("cfg-timezone-unknown", RC, ['timezone = "Nowhere/City"'], "timezone", 2),
    ("cfg-time-of-day-unknown", RC, ['time_of_day = "noon"'], "time_of_day", 2),
    ("cfg-max-session-text", RC, ['max_session = "soon"'], "max_session", 2),
    ("run-max-session-zero", R + ["--max-session", "0h"], None, "max_session", 2),
    ("run-stop-timeout-zero", R + ["--stop-timeout", "0"], None, "stop_timeout", 2),
    ("cfg-overlay-not-tables", RC, ['overlay = ["clock"]'], "overlay", 2),
    ("cfg-overlay-unknown-kind", RC, ['overlay = [{{ kind = "marquee" }}]'], "marquee", 2),
    ("cfg-overlay-unknown-key", RC, ['overlay = [{{ kind = "clock", blink = true }}]'], "blink", 2),
    ("cfg-overlay-font-missing", RC, ['overlay = [{{ kind = "text", text = "hi", font = "{w}/nofont.ttf" }}]'], "nofont.ttf", 2),
    ("cfg-overlay-font-not-a-font", RC, ['overlay = [{{ kind = "text", text = "hi", font = "{w}/junk.txt" }}]'], "junk.txt", 2),
    ("cfg-overlay-format-unknown", RC, ['overlay = [{{ kind = "clock", format = "%H:%Q" }}]'], "%Q", 2),
    ("cfg-overlay-timezone-unknown", RC, ['overlay = [{{ kind = "clock", timezone = "Mars/Olympus" }}]'], "Mars/Olympus", 2),
    ("cfg-overlay-text-too-wide", RC, ['overlay = [{{ kind = "text", text = "far too long for a 64x36 picture" }}]'], "px wide", 2),
    ("cfg-overlay-same-name", RC, ['overlay = [{{ kind = "clock" }}, {{ kind = "clock" }}]'], "name", 2),
    ("cfg-not-toml", ["run", "--config", "{w}/bad.toml"], None, "bad.toml", 2),
    # lofid library
    ("lib-list-unknown-scene", ["library", "list", "--scene", "nonsense"], None, "nonsense", 2),
    ("lib-prune-nan", ["library", "prune", "--max-size", "nan"], None, "nan", 2),
    ("lib-prune-inf", ["library", "prune", "--max-size", "inf"], None, "inf", 2),
    ("lib-prune-1e400", ["library", "prune", "--max-size", "1e400"], None, "1e400", 2),
    ("lib-prune-negative", ["library", "prune", "--max-size=-5M"], None, "-5M", 2),
    ("lib-prune-words", ["library", "prune", "--max-size", "lots"], None, "lots", 2),
    ("lib-prune-missing", ["library", "prune"], None, "--max-size", 2),
    ("lib-preview-columns-0", PV + ["--columns", "0"], None, "--columns", 2),
    ("lib-preview-columns-negative", PV + ["--columns", "-2"], None, "--columns", 2),
    ("lib-preview-count-0", PV + ["--count", "0"], None, "--count", 2),
    ("lib-preview-not-png", ["library", "preview", "{key}", "-o", "{w}/sheet.jpg"], None, "sheet.jpg", 2),
    ("lib-preview-unknown-key", ["library", "preview", "feedbeef", "-o", "{w}/s.png"], None, "feedbeef", 2),
    ("lib-show-unknown-key", ["library", "show", "feedbeef"], None, "feedbeef", 2),
    ("lib-unknown-action", ["library", "frobnicate"], None, "frobnicate", 2),
    ("lib-root-is-a-file", ["--library", "{w}/afile", "library", "list"], None, "afile", 2),
    ("lib-add-missing-file", ["library", "add", "{w}/none.mp4", "--prompt", "study"], None, "none.mp4", 2),
    ("lib-add-not-video", ["library", "add", "{w}/junk.txt", "--prompt", "study"], None, "junk.txt", 2),
    ("lib-add-one-picture", ["library", "add", "{w}/tiny.png", "--prompt", "study"], None, "tiny.png", 2),
    ("lib-add-one-frame-gif", ["library", "add", "{w}/one.gif", "--prompt", "study"], None, "one.gif", 2),
    ("lib-add-pngs-no-fps", ["library", "add", "{w}/src", "--prompt", "study"], None, "--fps", 2),
    ("lib-add-pngs-none", ["library", "add", "{w}/emptysrc", "--fps", "12", "--prompt", "study"], None, "emptysrc", 2),
    ("lib-add-pattern-none", ["library", "add", "{w}/src/*.jpg", "--fps", "12", "--prompt", "study"], None, "*.jpg", 2),
    ("lib-add-pngs-sizes-differ", ["library", "add", "{w}/mixed", "--fps", "12", "--prompt", "study"], None, "same size", 2),
    ("lib-add-too-small", ["library", "add", "{w}/small.gif", "--prompt", "study"], None, "small.gif", 2),
    ("lib-add-fps-nan", ["library", "add", "{w}/made.gif", "--fps", "nan", "--prompt", "study"], None, "--fps", 2),
    ("lib-add-fps-0", ["library", "add", "{w}/made.gif", "--fps", "0", "--prompt", "study"], None, "--fps", 2),
    ("lib-add-fifo", ["library", "add", "{w}/fifo", "--prompt", "study"], None, "fifo", 2),
    ("lib-add-no-prompt", ["library", "add", "{w}/made.gif"], None, "--prompt", 2),
    ("lib-add-empty-prompt", ["library", "add", "{w}/made.gif", "--prompt", " "], None, "--prompt", 2),
    # lofid models
    ("models-kind-unknown", ["models", "list", "--kind", "bogus"], None, "--kind", 2),
    ("models-verify-missing-file", ["models", "verify", "{w}/none.safetensors"], None, "none.safetensors", 2),
    ("models-verify-not-a-model", ["models", "verify", "--kind", "checkpoint", "{w}/junk.txt"], None, "junk.txt", 2),
    ("models-pull-unknown", ["models", "pull", "bogus"], None, "bogus", 2),
    ("models-no-action", ["models"], None, "ACTION", 2),
    # lofid ctl: bad arguments are 2; no daemon answering is 1 (README)
    ("ctl-unknown-action", ["ctl", "frobnicate"], None, "frobnicate", 2),
    ("ctl-scene-no-text", ["ctl", "scene"], None, "scene", 2),
    ("ctl-prompt-no-text", ["ctl", "prompt"], None, "prompt", 2),
    ("ctl-output-nothing", ["ctl", "output"], None, "output", 2),
    ("ctl-output-add-no-target", ["ctl", "output", "add"], None, "output", 2),
    ("ctl-output-unknown-verb", ["ctl", "output", "frobnicate", "x"], None, "frobnicate", 2),
    ("ctl-overlay-nothing", ["ctl", "overlay"], None, "overlay", 2),
    ("ctl-overlay-not-key-value", ["ctl", "overlay", "set", "hello"], None, "hello", 2),
    ("ctl-overlay-unknown-kind", ["ctl", "overlay", "set", "kind=marquee"], None, "marquee", 2),
    ("ctl-overlay-font-not-a-font", ["ctl", "overlay", "set", "kind=text", "text=hi", "font={w}/junk.txt"], None, "junk.txt", 2),
    ("ctl-overlay-format-unknown", ["ctl", "overlay", "set", "kind=clock", "format=%H:%Q"], None, "%Q", 2),
    ("ctl-overlay-size-words", ["ctl", "overlay", "set", "kind=clock", "size=big"], None, "size", 2),
    ("ctl-tcp-nonsense", ["ctl", "--tcp", "nonsense", "status"], None, "--tcp", 2),
    ("ctl-tcp-port-out-of-range", ["ctl", "--tcp", "127.0.0.1:99999", "status"], None, "--tcp", 2),
    ("ctl-tcp-no-token", TCP + ["status"], None, "token", 2),
    ("ctl-token-file-without-tcp", ["ctl", "--token-file", "{w}/short_token", "status"], None, "--token-file", 2),
    ("ctl-socket-and-tcp", ["ctl", "--socket", "{w}/x.sock"] + TCP[1:] + ["status"], None, "--socket", 2),
    ("ctl-token-file-open", TCP + ["--token-file", "{w}/open_token", "status"], None, "open_token", 2),
    ("ctl-token-file-short", TCP + ["--token-file", "{w}/short_token", "status"], None, "short_token", 2),
    ("ctl-token-file-fifo", TCP + ["--token-file", "{w}/fifo_token", "status"], None, "fifo_token", 2),
    ("ctl-no-daemon", ["ctl", "status"], None, "lofid.sock", 1),
    ("ctl-no-daemon-socket", ["ctl", "--socket", "{w}/none.sock", "next"], None, "none.sock", 1),
    # lofid config, lofid service
    ("config-unknown-flag", ["config", "--bogus"], None, "--bogus", 2),
    ("config-extra-word", ["config", "extra"], None, "extra", 2),
    ("service-no-action", ["service"], None, "ACTION", 2),
    ("service-unknown-action", ["service", "frobnicate"], None, "frobnicate", 2),
    ("service-install-extra", ["service", "install", "extra"], None, "extra", 2),
    # lofid prepare
    ("prep-images-no-src", ["prepare", "images", "{w}/nosrc", "{w}/dst"], None, "nosrc", 2),
    ("prep-images-dst-inside", ["prepare", "images", "{w}/src", "{w}/src/dst"], None, "DST", 2),
    ("prep-images-resolution-0", ["prepare", "images", "{w}/src", "{w}/dst", "--resolution", "0"], None, "--resolution", 2),
    ("prep-images-resolution-words", ["prepare", "images", "{w}/src", "{w}/dst", "--resolution", "axb"], None, "--resolution", 2),
    ("prep-images-min-size-negative", ["prepare", "images", "{w}/src", "{w}/dst", "--min-size", "-1"], None, "--min-size", 2),
    ("prep-images-dedupe-99", ["prepare", "images", "{w}/src", "{w}/dst", "--dedupe-distance", "99"], None, "--dedupe-distance", 2),
    ("prep-images-trigger-phrase", ["prepare", "images", "{w}/src", "{w}/dst", "--trigger", "a, b"], None, "--trigger", 2),
    ("prep-images-empty-src", ["prepare", "images", "{w}/emptysrc", "{w}/dst"], None, "emptysrc", 2),
    ("prep-clips-seconds-0", ["prepare", "clips", "{w}/src", "{w}/dst", "--seconds", "0"], None, "--seconds", 2),
    ("prep-clips-fps-nan", ["prepare", "clips", "{w}/src", "{w}/dst", "--fps", "nan"], None, "--fps", 2),
    ("prep-clips-resolution-5", ["prepare", "clips", "{w}/src", "{w}/dst", "--resolution", "5"], None, "--resolution", 2),
    ("prep-unknown-kind", ["prepare", "sounds", "{w}/src", "{w}/dst"], None, "sounds", 2),
    # lofid train
    ("train-config-missing", ["train", "style", "--config", "{w}/none.toml"], None, "none.toml", 2),
    ("train-config-rank-0", ["train", "style", "--config", "{cfg}"], ["rank = 0"], "rank", 2),
    ("train-config-unknown-key", ["train", "motion", "--config", "{cfg}"], ["colour = 1"], "colour", 2),
    ("train-no-data", ["train", "style"], None, "data", 2),
    ("train-data-missing", ["train", "style", "--data", "{w}/nodata", "--output", "{w}/l.safetensors"], None, "nodata", 2),
    ("train-temporal-lr-nan", ["train", "motion", "--temporal-lr", "nan"], None, "--temporal-lr", 2),
    ("train-unknown-kind", ["train", "voices"], None, "voices", 2),
]


def _config_text(argv, lines, w):
    """The row's config file: for `lofid run`, a runnable base (a small output, one
    second) under the row's keys, so that only the row's key can be wrong."""
    keys = {}
    if argv[0] == "run":
        keys.update({k: v.format(w=w) for k, v in RUN_BASE.items()})
    for line in lines:
        key, value = line.split("=", 1)
        keys[key.strip()] = value.strip().format(w=w)
    return "".join(f"{k} = {v}\n" for k, v in keys.items())


@pytest.mark.parametrize("argv, lines, named, code", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_naming_it(world, tmp_path, argv, lines, named, code):
    w = world["w"]
    cfg = tmp_path / "config.toml"
    if lines is not None:
        cfg.write_text(_config_text(argv, lines, w))
    args = [a.format(w=w, key=world["key"], cfg=cfg) for a in argv]
    r = world["forks"].run(args, tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == code, r.stderr
    lines_out = r.stderr.strip("\n").splitlines()
    assert len(lines_out) == 1 and lines_out[0].strip(), r.stderr
    assert named in lines_out[0], r.stderr


def test_the_table_is_wide():
    """At least 60 rows, and every command group has some."""
    assert len(ROWS) >= 60
    firsts = {next(a for a in r[1] if not a.startswith(("-", "{"))) for r in ROWS}
    assert {"generate", "run", "library", "models", "ctl", "config", "service",
            "prepare", "train"} <= firsts
