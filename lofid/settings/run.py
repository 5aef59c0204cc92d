"""`lofid run`'s options: one table. From it come the run command's flags, the config
file's keys and their checks, `lofid config --print-default`, RunConfig and the keys a
reloaded config changes while playing.

Values come from, in rising order: the defaults here, the config file, the command
line. Validation happens once, here, and names the key, the value and what was
expected.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

from lofid import paths
from lofid.media import VIDEO_KBPS
from lofid.settings import schema
from lofid.settings.schema import BadValue, ConfigError, Option
from lofid.stopping import STOP_TIMEOUT_S
from lofid.settings.values import (FITS, MAX_CROSSFADE, MAX_LOOP_FRAMES, OUTPUT_FPS,
                                   address_of, byte_size_of, seconds_of,
                                   size_of, web_address_of, zone_of)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _later(module: str, name: str):
    """A check that lives in `module`, imported when a value is checked, not when the
    settings are (`lofid --help` stays quick)."""
    def check(value, key):
        getattr(importlib.import_module(module), name)(value, key)
    return check


def _duration(value, key):
    # A session shorter than a second could hold no keyframe to end it at.
    if seconds_of(value, key) < 1:
        raise ConfigError(f"{key} = {value!r}: expected at least a second, e.g. \"47h\"")


def _overlays(value, key):
    # Pillow is imported only when a layer is given: `lofid --help` stays quick.
    from lofid.overlays import OverlayError, parse_layers
    try:
        parse_layers(value, key)
    except OverlayError as e:
        raise ConfigError(str(e)) from None


def _animatediff(name: str) -> dict:
    """choices= and expected= for a key whose names live with the AnimateDiff backend
    (numpy to import): looked up only when a value is given."""
    def names() -> tuple:
        from lofid.generators import animatediff
        return tuple(getattr(animatediff, name))
    return dict(choices=names, expected=lambda: ", ".join(names()))


_LORAS = 'a list of "file_or_name[:weight]"'

OPTIONS: list[Option] = [
    Option("outputs", list, [], "targets: file path, udp://, tcp://...?listen, rtmp(s)://, "
           "window, null", nonempty=True, live=True,
           expected='a list of targets, e.g. ["stream.mp4"]',
           flag=("-o", "--output"), metavar="TARGET",
           flag_help="repeatable: a file (.mp4 .mkv .webm .gif), udp://HOST:PORT, "
                     "tcp://HOST:PORT?listen, rtmp://..., rtmps://..., window or null"),
    Option("duration", float, None, "seconds of output; None = forever", nullable=True,
           minimum=0, above=True,
           expected="a number of seconds above 0 (leave it out to play forever)",
           flag="--duration", flag_help="seconds of output (default: forever)"),
    Option("stop_timeout", float, STOP_TIMEOUT_S, "seconds the first Ctrl-C or SIGTERM gives the "
           "outputs to finish their files; past it lofid ends without the ones that are "
           "stuck (keep it 2 s under systemd's TimeoutStopSec, 20 in lofid's unit)",
           minimum=1, maximum=300, expected="seconds, 1..300", flag="--stop-timeout",
           flag_help="seconds a first Ctrl-C may take to finish the files (default 10)"),
    Option("scene", str, "", 'what to show, in words; "" = the default scene', live=True,
           expected="text", flag="--scene",
           flag_help="what to show, in words (default: the study room)"),
    Option("rotate", float, 180.0, "seconds between loops of the same scene", live=True,
           minimum=0, above=True, expected="seconds above 0", flag="--rotate",
           flag_help="seconds before moving to another loop (default 180)"),
    Option("crossfade", float, 3.0, "seconds", live=True, minimum=0, maximum=MAX_CROSSFADE,
           expected=f"seconds, 0..{MAX_CROSSFADE:g}", flag="--crossfade",
           flag_help="crossfade seconds (default 3)"),
    Option("fps", int, 30, "output frames per second", choices=OUTPUT_FPS,
           expected=f"one of {', '.join(map(str, OUTPUT_FPS))}", flag="--fps",
           flag_help=f"output frames per second: {', '.join(map(str, OUTPUT_FPS))} (default 30)"),
    Option("size", str, "1920x1080", "output size", check=size_of, flag="--size",
           metavar="WxH", flag_help="output size (default 1920x1080)"),
    Option("audio", list, [], "audio files or folders for the stream's track", live=True,
           nonempty=True, expected='a list of files or folders, e.g. ["~/Music/lofi"]',
           flag="--audio", metavar="DIR|FILE",
           flag_help="repeatable: music files or folders for the audio track "
                     "(default: silence)"),
    Option("generate", bool, True, "false: play only loops already in the library",
           flag="--no-generate", flag_help="play only loops already in the library"),
    Option("realtime", bool, False, "pace files and null to the wall clock too",
           flag="--realtime",
           flag_help="pace files and null to the wall clock (streams and the window always are)"),
    Option("fit", str, "crop", "a loop of another shape: crop, or blur (blurred backdrop)",
           choices=FITS, expected=" or ".join(FITS), flag="--fit",
           flag_args={"choices": FITS},
           flag_help="a loop of another shape: crop (default) or blur (the whole loop over a "
                     "blurred backdrop)"),
    Option("bitrate", int, 4500, "video kb/s for streams and stream files",
           minimum=VIDEO_KBPS[0], maximum=VIDEO_KBPS[1],
           expected=f"kb/s, {VIDEO_KBPS[0]}..{VIDEO_KBPS[1]}", flag="--bitrate",
           flag_help="video kb/s (default 4500)"),
    Option("loop_frames", int, 60, "frames in each generated loop (AnimateDiff: at most 48)",
           minimum=2, maximum=MAX_LOOP_FRAMES, flag=False,
           expected=f"a whole number of frames, 2..{MAX_LOOP_FRAMES}"),
    Option("loop_size", str, None, "size loops are made at; default: the output's, at most "
           "1280 wide (AnimateDiff: 768 wide)", nullable=True, check=size_of, flag=False),
    Option("loop_fps", float, None, "frames per second of generated loops; default: one "
           "that divides the output fps (10 at 30, 12 at 24 and 60)", nullable=True,
           minimum=1, maximum=60, expected="1..60", flag=False),
    Option("fullscreen", bool, False, "window: start fullscreen (f toggles)",
           flag="--fullscreen"),
    Option("borderless", bool, False, "window: no decorations", flag="--borderless"),
    Option("close_stops", bool, False, "window: closing it stops lofid", flag=False),
    # The flag is lofid's own --library (before the command): cmd_run passes it.
    Option("library", str, None, "loop library folder", nullable=True, nonempty=True,
           expected="the path of a folder", flag=False),
    Option("library_max_size", str, "2GB", "the library's cap, kept as loops are made: the "
           "least recently played go first, never one playing or queued", check=byte_size_of,
           flag=False),
    Option("socket", str, None, 'control socket path; "" = the default; None = no socket',
           nullable=True, expected='the path of the control socket ("" for the default one)',
           flag="--socket", metavar="PATH", flag_args={"nargs": "?", "const": ""},
           flag_help="answer `lofid ctl` and the Neovim plugin on a control socket "
                     "(default path $XDG_RUNTIME_DIR/lofid/lofid.sock)"),
    Option("control_tcp", str, None, '"HOST:PORT": answer control requests on TCP too (needs '
           "control_token_file); clear text, so keep it on 127.0.0.1", nullable=True,
           check=address_of, flag=False),
    Option("control_token_file", str, None, "a file (mode 0600) with the secret a TCP client "
           "must send first, e.g. from `head -c 24 /dev/urandom | base64`", nullable=True,
           nonempty=True, expected="the path of a file holding a token", flag=False),
    Option("web", str, None, '"[HOST:]PORT": serve the web page (live picture, controls, '
           "library, /overlay for OBS); HOST other than 127.0.0.1 needs control_token_file",
           nullable=True, check=web_address_of, flag="--web", metavar="[HOST:]PORT",
           flag_help="serve the web page on PORT (127.0.0.1) or HOST:PORT; another address "
                     "than this machine's needs control_token_file"),
    # Making loops. AnimateDiff (a GPU and weights) or the procedural painter.
    Option("generator", str, "auto", "auto: animatediff when weights and a GPU are found; "
           "ray: made on the Ray cluster at ray_address",
           expected="auto, procedural, animatediff or ray", flag=False),
    # generator = "ray": loops made by workers on a Ray cluster (lofid.generators.cluster).
    Option("ray_address", str, None, 'generator "ray": the cluster, ray://HOST:10001 (Ray '
           "Client; from a laptop over an SSH tunnel) or HOST:6379 on a cluster node",
           nullable=True, nonempty=True, expected="ray://HOST:PORT or HOST:PORT", flag=False),
    Option("ray_generator", str, "animatediff", "what the Ray workers make loops with",
           choices=("animatediff", "procedural"), flag=False),
    Option("ray_workers", int, 0, "Ray workers to start; 0 = one per GPU of the cluster",
           minimum=0, maximum=1024, flag=False),
    Option("ray_worker_gpus", float, 1.0, "GPUs each Ray worker holds; 0 = CPU workers "
           "(the painter, tests)", minimum=0, maximum=16, flag=False),
    Option("ray_namespace", str, "lofid", "Ray namespace of the workers: lofids that share "
           "it share their workers", nonempty=True, flag=False),
    Option("model", str, None, "AnimateDiff: SD1.5 checkpoint, path or name", nullable=True,
           nonempty=True, expected="a path or a name", flag=False),
    Option("motion_adapter", str, None, "AnimateDiff: motion adapter, path or name",
           nullable=True, nonempty=True, expected="a path or a name", flag=False),
    Option("loras", list, [], 'style LoRAs, "file_or_name[:weight]"', nonempty=True,
           expected=_LORAS, flag=False),
    Option("motion_loras", list, [], 'motion LoRAs, "file_or_name[:weight]"', nonempty=True,
           expected=_LORAS, flag=False),
    Option("steps", int, None, "denoising steps (default 25; few-step 4-8)", nullable=True,
           minimum=1, maximum=200, expected="1..200", flag=False),
    Option("guidance", float, None, "guidance scale (default 7.5; few-step 1-2)",
           nullable=True, minimum=0, expected="a number of 0 or more", flag=False),
    Option("scheduler", str, None, "ddim, euler (Lightning), lcm (AnimateLCM)", nullable=True,
           **_animatediff("SCHEDULERS"), flag=False),
    Option("loop_method", str, None, "circular, circular+blend, none", nullable=True,
           **_animatediff("LOOP_METHODS"), flag=False),
    Option("preset", str, None, "standard, lcm, lightning", nullable=True,
           **_animatediff("PRESETS"), flag=False),
    # inf is allowed: never make a loop again for its seam.
    Option("max_seam_ratio", float, 1.5, "a generated loop above it is made again", live=True,
           minimum=1.0, finite=False, expected="a number of 1.0 or more", flag=False),
    # Scene changes asked for (scene.set, audio.prompt).
    Option("live_crossfade", bool, True, "a requested scene in the library crosses in at "
           "once, encoded live; false: at a keyframe after preparing it", live=True,
           flag=False),
    Option("min_scene", float, 10.0, "seconds between scene changes the music makes",
           live=True, minimum=0, maximum=3600, expected="seconds, 0..3600", flag=False),
    Option("scene_history", int, 8, "loops remembered, so rotation does not repeat them",
           minimum=1, maximum=1000, expected="a whole number, 1..1000", flag=False),
    # A day that follows the clock.
    Option("schedule", list, [], '[[schedule]] entries: at = "HH:MM", scene = "...", and '
           "optionally timezone, rotate (seconds), audio (a file or folder); each holds "
           "until the next", live=True, check=_later("lofid.schedule", "check"), flag=False),
    Option("time_of_day", str, "scene", "scene: the time of day the scene's words say; "
           "follow: the clock's (morning, day, golden hour, sunset, night)", live=True,
           choices=("scene", "follow"), expected='"scene" or "follow"', flag=False),
    Option("timezone", str, None, "the zone of schedule times and time_of_day = \"follow\" "
           '(e.g. "Europe/Berlin"); default: the machine\'s', nullable=True, live=True,
           check=zone_of, flag=False),
    Option("max_session", str, None, 'RTMP outputs: end the connection before this long '
           '("47h" for Twitch\'s 48-hour limit) and open a new one at once', nullable=True,
           check=_duration, flag="--max-session", metavar="DURATION",
           flag_help='RTMP: start a new session before this long, e.g. "47h" (default: never)'),
    # Text over the picture: [[overlay]] tables (lofid.overlays.layers; README "Overlays").
    Option("overlay", list, [], "text over the picture: [[overlay]] tables with kind "
           "(now_playing, clock, scene, text), text, position, font, size, colour, ...",
           live=True, check=_overlays, flag=False, expected="[[overlay]] tables"),
    Option("standby_scenes", int, 8, "scenes whose next loop's first frames stay in memory",
           minimum=0, maximum=64, expected="a whole number, 0..64", flag=False),
]

# Addresses only this machine reaches.
LOOPBACK = ("127.0.0.1", "::1", "localhost")

BY_NAME = {o.name: o for o in OPTIONS}

# The keys a reloaded config changes while playing; the others need a restart.
LIVE_KEYS = frozenset(o.name for o in OPTIONS if o.live)


def _post_init(self):
    # Only "not given" becomes an empty list: anything else that is not a list is left
    # for validate() to name (list("x.mp4") would be five outputs).
    for o in OPTIONS:
        if o.type is list:
            value = getattr(self, o.name)
            if value is None or isinstance(value, tuple):
                setattr(self, o.name, list(value or []))


# One field per option, with its default: `lofid run`'s whole configuration.
RunConfig = dataclasses.make_dataclass(
    "RunConfig",
    [(o.name, o.type if not o.nullable else (o.type | None),
      dataclasses.field(default=None) if o.type is list else dataclasses.field(default=o.default))
     for o in OPTIONS],
    namespace={"__post_init__": _post_init,
               "__doc__": "`lofid run`'s options (lofid.settings.run.OPTIONS), one field each."})
RunConfig.__module__ = __name__


def default_path() -> Path:
    """~/.config/lofid/config.toml, or under $XDG_CONFIG_HOME."""
    return paths.config_file()


def default_text() -> str:
    """A config file with every key at its default, each with its help as comment."""
    return schema.default_text(OPTIONS, "lofid's config (TOML): every key at its default. "
                                        "Uncomment to change.")


def validate(cfg) -> RunConfig:
    """`cfg` if every value is one its option takes (numbers as the option holds them),
    else ConfigError naming the first key that is not."""
    for o in OPTIONS:
        value = getattr(cfg, o.name)
        try:
            setattr(cfg, o.name, schema.coerce(o, value))
        except BadValue as e:
            raise ConfigError(f"{o.name} = {value!r}: expected {e.expected}") from None
    if cfg.schedule and cfg.timezone is not None:
        # Each entry's time is read in the default zone unless it names its own.
        from lofid.schedule import Schedule
        Schedule.from_config(cfg.schedule, cfg.timezone)
    if cfg.generator == "ray" and cfg.ray_address is None:
        raise ConfigError('generator = "ray" needs ray_address: the Ray cluster, e.g. '
                          '"ray://127.0.0.1:10001" (Ray Client, over an SSH tunnel)')
    if cfg.overlay:
        # Whether each layer's fixed text fits the picture needs the output's size.
        from lofid.overlays import OverlayError, parse_layers
        from lofid.overlays.board import Overlays
        try:
            Overlays(parse_layers(cfg.overlay), size_of(cfg.size))
        except OverlayError as e:
            raise ConfigError(str(e)) from None
    if cfg.control_tcp is not None and cfg.control_token_file is None:
        raise ConfigError(f"control_tcp = {cfg.control_tcp!r} needs control_token_file: "
                          "a TCP listener without a token would let anyone who can reach "
                          "the port drive lofid")
    if cfg.web is not None and cfg.control_token_file is None \
            and web_address_of(cfg.web)[0] not in LOOPBACK:
        raise ConfigError(f"web = {cfg.web!r} is reachable from other machines and needs "
                          "control_token_file: the page then asks for that token")
    return cfg


def read(path) -> dict:
    """The keys of the config file at `path`; ConfigError when it cannot be read or names
    a key that is not one."""
    import os
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        # A FIFO or a device would block the read, or never end.
        raise ConfigError(f"config {str(path)!r} is not a regular file")
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config {str(path)!r} cannot be read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {str(path)!r} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {str(path)!r} is not text: TOML is UTF-8, and byte "
                          f"{e.start} is not") from None
    except RecursionError:
        # tomllib reads nested arrays and tables by recursion: a few hundred levels
        # exhaust the stack. No config nests like that.
        raise ConfigError(f"config {str(path)!r} nests arrays or tables too deeply "
                          f"to read") from None
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"config {str(path)!r}: unknown key {unknown[0]!r}; "
                          f"known keys: {', '.join(sorted(BY_NAME))}")
    return values


def load(path: str | Path | None, overrides: dict) -> RunConfig:
    """Defaults, then the file at `path` (if any), then `overrides` (None values skipped)."""
    values = read(path) if path is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(RunConfig(**values))


def add_flags(parser) -> None:
    """`lofid run`'s flags, one per option that has one."""
    schema.add_flags(parser, OPTIONS)


def overrides_from_args(args) -> dict:
    """{key: value} of the run flags the user gave (lofid's own --library among them)."""
    over = schema.overrides_from_args(args, OPTIONS)
    if getattr(args, "library", None) is not None:
        over["library"] = args.library
    return over
