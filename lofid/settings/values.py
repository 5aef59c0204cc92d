"""Values that take more than a type to check: sizes, byte sizes, addresses, tokens,
and the limits every part of lofid agrees on (the config, the flags, the player)."""

from __future__ import annotations

import math

from lofid.settings.schema import ConfigError

OUTPUT_FPS = (24, 25, 30, 50, 60)
FITS = ("crop", "blur")

# A picture's sides: even (the video encoders store colour at half size), within these.
MIN_SIDE = 16
MAX_WIDTH, MAX_HEIGHT = 7680, 4320
SIZE_RANGE = f"{MIN_SIDE}..{MAX_WIDTH} x {MIN_SIDE}..{MAX_HEIGHT}"

MAX_CROSSFADE = 30.0      # seconds

# Limits on the work one loop may ask for: every frame of a loop is held in memory
# (width x height x 3 bytes each), by the generator and again by the player.
MAX_LOOP_FRAMES = 3600            # five minutes at 12 fps
MAX_LOOP_BYTES = 2 << 30          # 2 GiB of frames


def size_in_range(w: int, h: int) -> bool:
    """Whether w x h is within SIZE_RANGE (evenness apart)."""
    return MIN_SIDE <= w <= MAX_WIDTH and MIN_SIDE <= h <= MAX_HEIGHT


def size_of(text: str, key: str = "size") -> tuple[int, int]:
    try:
        w, h = (int(p) for p in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"{key} {text!r} is not WIDTHxHEIGHT (for example 1920x1080)") from None
    if not size_in_range(w, h) or w % 2 or h % 2:
        raise ConfigError(f"{key} {text!r}: expected even sides, {SIZE_RANGE}")
    return w, h


def byte_size_of(value, key: str = "library_max_size") -> int:
    """Bytes from a size such as "2GB", "500M", "1.5GiB" or a whole number of bytes."""
    expected = 'a size such as "2GB" or "500MB", or bytes'
    if isinstance(value, int) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = size_in_bytes(value)
        except ValueError:
            raise ConfigError(f"{key} = {value!r}: expected {expected}") from None
    else:
        raise ConfigError(f"{key} = {value!r}: expected {expected}")
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{key} = {value!r}: expected {expected}, 0 or more")
    return int(number)


_BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size_in_bytes(text: str) -> float:
    """"500M", "2GB", "1.5GiB", "123" as a number of bytes (nan, inf and negatives
    as they are: the caller says what it accepts); ValueError when it is no size."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in _BYTE_UNITS else ""
    return float(t[: len(t) - len(unit)]) * _BYTE_UNITS[unit]


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


def web_address_of(text, key: str = "web") -> tuple[str, int]:
    """("host", port) of the web page from "PORT" (on 127.0.0.1) or "HOST:PORT"."""
    if isinstance(text, str) and text.strip().isdigit():
        port = int(text.strip())
        if not 1 <= port <= 65535:
            raise ConfigError(f"{key} = {text!r}: the port must be a number from 1 to 65535")
        return "127.0.0.1", port
    return address_of(text, key)


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


_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def seconds_of(value, key: str) -> float:
    """Seconds from a duration such as "47h", "90m", "1h30m", "45s", "2d", or a number
    of seconds; ConfigError naming `key` when it is none, or not above 0."""
    import re
    expected = 'a duration such as "47h", "90m", "1h30m" or a number of seconds, above 0'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*(\d+(\.\d+)?\s*[dhms]\s*)+", value.lower()):
        seconds = sum(float(n) * _DURATION_UNITS[u]
                      for n, _, u in re.findall(r"(\d+(\.\d+)?)\s*([dhms])", value.lower()))
    else:
        raise ConfigError(f"{key} = {value!r}: expected {expected}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{key} = {value!r}: expected {expected}")
    return seconds


def zone_of(name, key: str):
    """The tzinfo of an IANA zone name ("Europe/Berlin", "UTC"); None, "" or "local":
    None, the machine's own zone. ConfigError naming `key` when it is unknown."""
    if name is None or (isinstance(name, str) and name.strip().lower() in ("", "local")):
        return None
    if not isinstance(name, str):
        raise ConfigError(f"{key} = {name!r}: expected a time zone name such as "
                          f"\"Europe/Berlin\" or \"UTC\"")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"{key} = {name!r}: unknown time zone; expected an IANA name "
                          f"such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\" "
                          f"(is tzdata installed?)") from None
