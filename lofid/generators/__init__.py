"""Generators: one module per backend, one small interface.

A generator is a function

    generate(spec, seed, size, frames, fps, progress=None, **options) -> Loop

`size` is (width, height); `progress`, when given, is called as progress(done, total).
Backends are looked up by name and imported only when used, so that the CLI starts
fast and torch is loaded only by the backends that need it.
"""

from __future__ import annotations

import importlib

from lofid.errors import UserError

# name -> module that defines `generate`
BACKENDS = {
    "procedural": "lofid.generators.procedural",
    "animatediff": "lofid.generators.animatediff",
    "ray": "lofid.generators.cluster",
}


class UnknownGenerator(UserError, ValueError):
    pass


def names() -> list[str]:
    return sorted(BACKENDS)


def get(name: str):
    """The `generate` function of the backend called `name`."""
    if name not in BACKENDS:
        raise UnknownGenerator(
            f"unknown generator {name!r}: expected one of {', '.join(names())}")
    return importlib.import_module(BACKENDS[name]).generate
