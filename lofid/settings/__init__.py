"""Settings: one schema per command (schema.Option), the values that need more than a
type to check (values), and `lofid run`'s table (run)."""

from lofid.settings.schema import BadValue, ConfigError, Option
from lofid.settings.values import (FITS, MAX_CROSSFADE, MAX_LOOP_BYTES, MAX_LOOP_FRAMES,
                                   OUTPUT_FPS, SIZE_RANGE, address_of, byte_size_of,
                                   check_loop_work, loop_fps_for, read_token, seconds_of,
                                   size_of)

__all__ = ["BadValue", "ConfigError", "Option", "FITS", "MAX_CROSSFADE", "MAX_LOOP_BYTES",
           "MAX_LOOP_FRAMES", "OUTPUT_FPS", "SIZE_RANGE", "address_of", "byte_size_of",
           "check_loop_work", "loop_fps_for", "read_token", "seconds_of", "size_of"]
