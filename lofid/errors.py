"""What can go wrong, as the user sees it: each error carries the exit code it ends
`lofid` with, and its message is the one line printed.

- UserError: something the user gave is wrong (a flag, a file, a config key); exit 2.
- Failure: the machine, not the input (a full disk, an encoder that fails); exit 1.

A bare ValueError or KeyError from deep inside is a bug, not bad input: it is never
mapped here and shows its traceback.
"""

from __future__ import annotations


class LofidError(Exception):
    """An error lofid expects and explains in one line; `exit_code` ends the command."""

    exit_code = 1


class UserError(LofidError):
    """Something the user gave us is wrong; the message says what."""

    exit_code = 2


class Failure(LofidError):
    """The machine failed us (disk, encoder, network), not the user's input."""

    exit_code = 1


class BadArgument(UserError, ValueError):
    """A value a library function cannot take (a size, a frame count, a scheduler's
    name). It is the user's error when the CLI passed it on unchanged, and still a
    ValueError for Python callers. Checks that guard against our own bugs keep raising
    plain ValueError, so a bug is never reported as bad input."""
