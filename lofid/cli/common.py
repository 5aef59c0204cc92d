"""What every command shares: the one-line parser error, BadInput, sizes."""

from __future__ import annotations

import argparse
import math

from lofid.errors import UserError

EXIT_BAD_INPUT = 2

# The name the commands here raise lofid.errors.UserError by.
BadInput = UserError


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before its error; one line is clearer.
    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")



def _check_size(w: int, h: int, text: str | None = None) -> None:
    from lofid.settings.values import SIZE_RANGE as _SIZE_RANGE, size_in_range
    if not size_in_range(w, h):
        raise BadInput(f"--size {text or f'{w}x{h}'!r} is out of range: expected {_SIZE_RANGE}")


def parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise BadInput(f"--size {text!r} is not WIDTHxHEIGHT (for example 1280x720)") from None
    _check_size(w, h, text)
    return w, h


def parse_byte_size(text: str, flag: str = "--max-size") -> int:
    from lofid.settings.values import size_in_bytes
    try:
        value = size_in_bytes(text)
    except ValueError:
        raise BadInput(f"{flag} {text!r} is not a size (for example 500M or 2G)") from None
    if value < 0:
        raise BadInput(f"{flag} {text!r} is not a size: it is negative")
    if not math.isfinite(value):    # nan, inf, 1e400
        raise BadInput(f"{flag} {text!r} is not a size: expected a finite number "
                       f"(for example 500M or 2G)")
    return int(value)



def _library(args):
    from lofid.library import Library, LibraryError
    try:
        return Library(args.library)
    except LibraryError as e:     # --library (or $LOFID_LIBRARY) names a file, say
        raise BadInput(f"--library: {e}") from None
