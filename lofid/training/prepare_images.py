"""Not built yet."""

from __future__ import annotations


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from lofid.cli import BadInput
    raise BadInput("this command is not built yet")
