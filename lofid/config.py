"""The TOML config: one key per `lofid run` option, with defaults and validation.

Values come from, in rising order: the defaults here, the config file, the command
line. Validation happens once, here, and names the key, the value and what was
expected.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path

from lofid import paths
from lofid.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(UserError, ValueError):
    pass


OUTPUT_FPS = (24, 25, 30, 50, 60)
FITS = ("crop", "blur")

# Limits on the work one loop may ask for: every frame of a loop is held in memory
# (width x height x 3 bytes each), by the generator and again by the player.
MAX_LOOP_FRAMES = 3600            # five minutes at 12 fps
MAX_LOOP_BYTES = 2 << 30          # 2 GiB of frames


@dataclass
class RunConfig:
    outputs: list = None          # targets: file path, udp://, tcp://...?listen, rtmp(s)://, window, null
    duration: float | None = None  # seconds of output; None = forever
    scene: str = ""               # what to show, in words; "" = the default scene
    rotate: float = 180.0         # seconds between loops of the same scene
    crossfade: float = 3.0        # seconds
    fps: int = 30                 # output frames per second
    size: str = "1920x1080"       # output size
    audio: list = None            # audio files or folders for the stream's track
    generate: bool = True         # false: play only loops already in the library
    realtime: bool = False        # pace files and null to the wall clock too
    fit: str = "crop"             # a loop of another shape: crop, or blur (blurred backdrop)
    bitrate: int = 4500           # video kb/s for streams and stream files
    loop_frames: int = 60         # frames in each generated loop (AnimateDiff: at most 48)
    loop_size: str | None = None  # size loops are made at; default: the output's, at most
                                  # 1280 wide (AnimateDiff: 768 wide)
    loop_fps: float | None = None  # frames per second of generated loops; default: one that
                                  # divides the output fps (10 at 30, 12 at 24 and 60)
    fullscreen: bool = False      # window: start fullscreen (f toggles)
    borderless: bool = False      # window: no decorations
    close_stops: bool = False     # window: closing it stops lofid
    library: str | None = None    # loop library folder
    library_max_size: str = "2GB"  # the library's cap, kept as loops are made: the least
                                  # recently played go first, never one playing or queued
    socket: str | None = None     # control socket path; "" = the default; None = no socket
    control_tcp: str | None = None  # "HOST:PORT": answer control requests on TCP too (needs
                                  # control_token_file); clear text, so keep it on 127.0.0.1
    control_token_file: str | None = None  # a file (mode 0600) with the secret a TCP client
                                  # must send first, e.g. from `head -c 24 /dev/urandom | base64`
    # Making loops. AnimateDiff (a GPU and weights) or the procedural painter.
    generator: str = "auto"       # auto: animatediff when weights and a GPU are found
    model: str | None = None      # AnimateDiff: SD1.5 checkpoint, path or name
    motion_adapter: str | None = None
    loras: list = None            # style LoRAs, "file_or_name[:weight]"
    motion_loras: list = None     # motion LoRAs, "file_or_name[:weight]"
    steps: int | None = None      # denoising steps (default 25; few-step 4-8)
    guidance: float | None = None
    scheduler: str | None = None  # ddim, euler (Lightning), lcm (AnimateLCM)
    loop_method: str | None = None  # circular, circular+blend, none
    preset: str | None = None     # standard, lcm, lightning
    max_seam_ratio: float = 1.5   # a generated loop above it is made again
    # Scene changes asked for (scene.set, audio.prompt).
    live_crossfade: bool = True   # a requested scene in the library crosses in at once,
                                  # encoded live; false: at a keyframe after preparing it
    min_scene: float = 10.0       # seconds between scene changes the music makes
    scene_history: int = 8        # loops remembered, so rotation does not repeat them
    standby_scenes: int = 8       # scenes whose next loop's first frames stay in memory

    def __post_init__(self):
        # Only "not given" becomes an empty list: anything else that is not a list is
        # left for validate() to name (list("x.mp4") would be five outputs).
        for key in ("outputs", "audio", "loras", "motion_loras"):
            value = getattr(self, key)
            if value is None or isinstance(value, tuple):
                setattr(self, key, list(value or []))


def default_path() -> Path:
    """~/.config/lofid/config.toml, or under $XDG_CONFIG_HOME."""
    return paths.config_file()


def default_text() -> str:
    """A config file with every key at its default, each with its comment (taken from
    RunConfig's own comments, so the two never disagree)."""
    import inspect
    entries: list[list[str]] = []      # [name, comment]
    for line in inspect.getsource(RunConfig).splitlines()[1:]:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#") and entries and indent > 8:
            entries[-1][1] += " " + stripped.lstrip("# ")   # a comment's second line
        elif ":" in stripped and "=" in stripped and not stripped.startswith(("def ", "self.")):
            name = stripped.split(":")[0]
            entries.append([name, stripped.split("#", 1)[1].strip() if "#" in stripped else ""])
        elif stripped.startswith("def "):
            break
    defaults = RunConfig()
    lines = ["# lofid's config (TOML): every key at its default. Uncomment to change.", ""]
    for name, comment in entries:
        value = getattr(defaults, name)
        if value is None:
            shown = "(not set)"
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, str):
            shown = f'"{value}"'
        else:
            shown = str(value)
        lines += [f"# {comment}", f"# {name} = {shown}", ""]
    return "\n".join(lines)


def size_of(text: str, key: str = "size") -> tuple[int, int]:
    try:
        w, h = (int(p) for p in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"{key} {text!r} is not WIDTHxHEIGHT (for example 1920x1080)") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320) or w % 2 or h % 2:
        raise ConfigError(f"{key} {text!r}: expected even sides, 16..7680 x 16..4320")
    return w, h


def byte_size_of(value, key: str = "library_max_size") -> int:
    """Bytes from a size such as "2GB", "500M", "1.5GiB" or a whole number of bytes."""
    import math
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    expected = 'a size such as "2GB" or "500MB", or bytes'
    if isinstance(value, int) and not isinstance(value, bool):
        number, unit = float(value), ""
    elif isinstance(value, str):
        text = value.strip().lower().removesuffix("b").removesuffix("i")
        unit = text[-1:] if text[-1:] in units else ""
        try:
            number = float(text[: len(text) - len(unit)])
        except ValueError:
            raise ConfigError(f"{key} = {value!r}: expected {expected}") from None
    else:
        raise ConfigError(f"{key} = {value!r}: expected {expected}")
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{key} = {value!r}: expected {expected}, 0 or more")
    return int(number * units[unit])


def check_loop_work(width: int, height: int, frames: int, size_key: str = "loop_size",
                    frames_key: str = "loop_frames") -> None:
    """ConfigError when a loop of `frames` frames at width x height is more than a loop
    may be (MAX_LOOP_FRAMES frames, MAX_LOOP_BYTES of frames in memory)."""
    if frames > MAX_LOOP_FRAMES:
        raise ConfigError(f"{frames_key} {frames}: at most {MAX_LOOP_FRAMES} frames in a loop")
    need = frames * width * height * 3
    if need > MAX_LOOP_BYTES:
        raise ConfigError(f"{frames_key} {frames} at {size_key} {width}x{height} would hold "
                          f"{need / 2**30:.1f} GiB of frames; a loop may hold at most "
                          f"{MAX_LOOP_BYTES / 2**30:g} GiB: fewer frames or a smaller size")


def loop_fps_for(output_fps: int) -> float:
    """A lofi frame rate (8-15) that divides the output's, so each loop frame is shown a
    whole number of times: no blended in-between frames to make, and crossfades that
    move in step with the loops."""
    for fps in (12, 10, 12.5, 8, 15):
        if (output_fps / fps).is_integer():
            return fps
    return 12.0


def _number(value) -> bool:
    """A finite int or float; TOML's true/false, nan and inf are not numbers of anything."""
    import math
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) and x for x in value)


def validate(cfg: RunConfig) -> RunConfig:
    def need(ok: bool, key: str, expected: str):
        if not ok:
            raise ConfigError(f"{key} = {getattr(cfg, key)!r}: expected {expected}")

    need(cfg.duration is None or (_number(cfg.duration) and cfg.duration > 0),
         "duration", "a number of seconds above 0 (leave it out to play forever)")
    need(_number(cfg.rotate) and cfg.rotate > 0, "rotate", "seconds above 0")
    need(_number(cfg.crossfade) and 0 <= cfg.crossfade <= 30, "crossfade", "seconds, 0..30")
    need(cfg.fps in OUTPUT_FPS and not isinstance(cfg.fps, bool), "fps",
         f"one of {', '.join(map(str, OUTPUT_FPS))}")
    need(isinstance(cfg.fit, str) and cfg.fit in FITS, "fit", " or ".join(FITS))
    need(_whole(cfg.bitrate) and 300 <= cfg.bitrate <= 50000, "bitrate", "kb/s, 300..50000")
    need(_whole(cfg.loop_frames) and 2 <= cfg.loop_frames <= MAX_LOOP_FRAMES, "loop_frames",
         f"a whole number of frames, 2..{MAX_LOOP_FRAMES}")
    need(cfg.loop_fps is None or (_number(cfg.loop_fps) and 1 <= cfg.loop_fps <= 60),
         "loop_fps", "1..60")
    need(isinstance(cfg.scene, str), "scene", "text")
    need(_text_list(cfg.outputs), "outputs", 'a list of targets, e.g. ["stream.mp4"]')
    need(_text_list(cfg.audio), "audio", 'a list of files or folders, e.g. ["~/Music/lofi"]')
    for key in ("generate", "realtime", "fullscreen", "borderless", "close_stops"):
        need(isinstance(getattr(cfg, key), bool), key, "true or false")
    need(cfg.library is None or (isinstance(cfg.library, str) and cfg.library != ""),
         "library", "the path of a folder")
    need(cfg.socket is None or isinstance(cfg.socket, str), "socket",
         'the path of the control socket ("" for the default one)')
    need(isinstance(cfg.generator, str), "generator", "auto, procedural or animatediff")
    for key in ("model", "motion_adapter"):
        need(getattr(cfg, key) is None or (isinstance(getattr(cfg, key), str)
                                           and getattr(cfg, key) != ""), key, "a path or a name")
    need(_text_list(cfg.loras), "loras", 'a list of "file_or_name[:weight]"')
    need(_text_list(cfg.motion_loras), "motion_loras", 'a list of "file_or_name[:weight]"')
    need(cfg.steps is None or (_whole(cfg.steps) and 1 <= cfg.steps <= 200), "steps", "1..200")
    need(cfg.guidance is None or (_number(cfg.guidance) and cfg.guidance >= 0),
         "guidance", "a number of 0 or more")
    if (cfg.scheduler, cfg.loop_method, cfg.preset) != (None, None, None):
        # Only when set: the names live with the AnimateDiff backend (numpy to import).
        from lofid.generators.animatediff import LOOP_METHODS, PRESETS, SCHEDULERS
        need(cfg.scheduler is None or cfg.scheduler in SCHEDULERS, "scheduler",
             ", ".join(SCHEDULERS))
        need(cfg.loop_method is None or cfg.loop_method in LOOP_METHODS, "loop_method",
             ", ".join(LOOP_METHODS))
        need(cfg.preset is None or cfg.preset in tuple(PRESETS), "preset", ", ".join(PRESETS))
    # inf is allowed: never make a loop again for its seam.
    need(isinstance(cfg.max_seam_ratio, (int, float)) and not isinstance(cfg.max_seam_ratio, bool)
         and cfg.max_seam_ratio >= 1.0, "max_seam_ratio", "a number of 1.0 or more")
    need(isinstance(cfg.live_crossfade, bool), "live_crossfade", "true or false")
    need(_number(cfg.min_scene) and 0 <= cfg.min_scene <= 3600, "min_scene", "seconds, 0..3600")
    need(_whole(cfg.scene_history) and 1 <= cfg.scene_history <= 1000, "scene_history",
         "a whole number, 1..1000")
    need(_whole(cfg.standby_scenes) and 0 <= cfg.standby_scenes <= 64, "standby_scenes",
         "a whole number, 0..64")
    byte_size_of(cfg.library_max_size, "library_max_size")
    size_of(cfg.size)
    if cfg.loop_size is not None:
        size_of(cfg.loop_size, "loop_size")
    need(cfg.control_token_file is None or (isinstance(cfg.control_token_file, str)
                                            and cfg.control_token_file != ""),
         "control_token_file", "the path of a file holding a token")
    if cfg.control_tcp is not None:
        address_of(cfg.control_tcp, "control_tcp")
        if cfg.control_token_file is None:
            raise ConfigError(f"control_tcp = {cfg.control_tcp!r} needs control_token_file: "
                              "a TCP listener without a token would let anyone who can reach "
                              "the port drive lofid")
    return cfg


def address_of(text, key: str = "control_tcp") -> tuple[str, int]:
    """("host", port) from "HOST:PORT" (an IPv6 host in brackets: "[::1]:7601")."""
    from urllib.parse import urlsplit
    example = "HOST:PORT, e.g. 127.0.0.1:7601"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{key} = {text!r}: expected {example}")
    try:
        url = urlsplit("//" + text.strip())
        port = url.port
    except ValueError:
        raise ConfigError(f"{key} = {text!r}: the port must be a number from 1 to 65535; "
                          f"expected {example}") from None
    if not url.hostname or port is None or url.path or url.query or url.username:
        raise ConfigError(f"{key} = {text!r}: expected {example}")
    return url.hostname, port


MIN_TOKEN = 16      # characters; a guessable token is no lock


def read_token(path, key: str = "control_token_file") -> str:
    """The token in `path` (surrounding white space removed). The file must be the
    user's and readable by no one else, like an ssh key."""
    import os
    import stat
    path = os.path.expanduser(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):   # a FIFO would block the read
            raise ConfigError(f"{key} = {str(path)!r}: expected a file holding a token")
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise ConfigError(f"{key} = {str(path)!r} cannot be read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{key} = {str(path)!r}: expected a text token, found binary") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(f"{key} = {str(path)!r} is readable by others "
                          f"(mode {stat.S_IMODE(st.st_mode):o}); expected 600: chmod 600 {path}")
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise ConfigError(f"{key} = {str(path)!r}: expected a token of at least {MIN_TOKEN} "
                          f"characters without spaces, found {len(token)} characters")
    return token


def load(path: str | Path | None, overrides: dict) -> RunConfig:
    """Defaults, then the file at `path` (if any), then `overrides` (None values skipped)."""
    values: dict = {}
    if path is not None:
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
        known = {f.name for f in fields(RunConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"config {str(path)!r}: unknown key {unknown[0]!r}; "
                              f"known keys: {', '.join(sorted(known))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(RunConfig(**values))
