"""The TOML config of `lofid run`: the names other modules have imported from here.
The options themselves are described once, in lofid.settings.run."""

from lofid.settings.run import (LIVE_KEYS, OPTIONS, RunConfig, default_path,  # noqa: F401
                                default_text, load, validate)
from lofid.settings.schema import ConfigError  # noqa: F401
from lofid.settings.values import (FITS, MAX_LOOP_BYTES, MAX_LOOP_FRAMES,  # noqa: F401
                                   MIN_TOKEN, OUTPUT_FPS, address_of, byte_size_of,
                                   check_loop_work, loop_fps_for, read_token, size_of)
