"""One way to describe an option: its type, default, range, help, flag, config key and
whether it applies while lofid runs. `lofid run` (lofid.settings.run) and the trainers
(lofid.training) describe their options with it; from the description come the
argparse flags, the checks of a config file's values and the commented defaults text.

Only the standard library is imported here: `lofid --help` must start at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from lofid.errors import UserError


class ConfigError(UserError, ValueError):
    """A value a config file or a flag gave that cannot be used."""


class BadValue(Exception):
    """`value` is not what the option takes; `expected` says what it takes."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


@dataclass(frozen=True)
class Option:
    """One option: TOML `name = value`, and (unless `flag` is False) a flag.

    `type` is int, float, str, bool or list (a list of strings). `minimum`/`maximum`
    bound numbers (inclusive; `above`: the minimum itself is not allowed); `choices`
    lists the allowed values (or is a function giving them, for names that live in a
    module too heavy to import up front). `nullable`: None is a value ("not set");
    `nonempty`: "" is not a string (nor a list item); `finite`: nan and inf are not
    numbers (max_seam_ratio takes inf). `check(value, name)`, when given, checks the
    value instead of the type, and raises ConfigError with its own message.

    `flag` True is `--name-with-dashes`; a string or tuple names the flag(s). `help` is
    the config key's comment (and the flag's help, unless `flag_help` is given).
    `flag_args` passes anything else argparse needs (choices, nargs). `live`: a new
    value read while lofid runs takes effect without a restart. `expected` replaces the
    description of what is expected in messages.
    """
    name: str
    type: type
    default: Any
    help: str
    choices: tuple | Callable[[], tuple] | None = None
    minimum: float | None = None
    maximum: float | None = None
    flag: bool | str | tuple = True
    metavar: str | None = None
    live: bool = False
    nullable: bool = False
    nonempty: bool = False
    above: bool = False
    finite: bool = True
    check: Callable[[Any, str], Any] | None = None
    expected: str | Callable[[], str] | None = None
    flag_help: str | None = None
    flag_args: dict | None = None

    @property
    def flag_name(self) -> str:
        """The (long) flag, e.g. --loop-frames."""
        if isinstance(self.flag, str):
            return self.flag
        if isinstance(self.flag, tuple):
            return self.flag[-1]
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> tuple | None:
        return self.choices() if callable(self.choices) else self.choices


def describe_expected(opt: Option) -> str:
    """What `opt` takes, in words (its `expected`, else from its type and range)."""
    if opt.expected is not None:
        return opt.expected() if callable(opt.expected) else opt.expected
    if opt.choices:
        return "one of " + ", ".join(repr(c) for c in opt.allowed())
    kind = {int: "a whole number", float: "a number", str: "text", bool: "true or false",
            list: "a list of strings"}[opt.type]
    lo, hi = _shown(opt.minimum), _shown(opt.maximum)
    if lo is not None and hi is not None:
        return f"{kind} from {lo} to {hi}"
    if lo is not None:
        return f"{kind} {'>' if opt.above else '>='} {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def _shown(value) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else repr(value)


def coerce(opt: Option, value: Any) -> Any:
    """`value` as `opt` holds it (a whole number as a float for a float option), or
    BadValue. ConfigError from an option's own `check` goes through as it is."""
    if value is None and opt.nullable:
        return None
    if opt.check is not None:
        opt.check(value, opt.name)
        return value
    bad = BadValue(describe_expected(opt))
    t = opt.type
    if t is bool:
        if not isinstance(value, bool):
            raise bad
    elif t is int:
        # TOML writes 30.0 for thirty as readily as 30: a whole float is that number.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (opt.finite and not math.isfinite(value)) or math.isnan(value):
            raise bad
        value = float(value)
    elif t is str:
        if not isinstance(value, str) or (opt.nonempty and value == ""):
            raise bad
    elif t is list:
        if not isinstance(value, list) or not all(isinstance(v, str) and (v or not opt.nonempty)
                                                  for v in value):
            raise bad
        value = list(value)
    if opt.choices is not None and value not in opt.allowed():
        raise bad
    if opt.minimum is not None and (value <= opt.minimum if opt.above else value < opt.minimum):
        raise bad
    if opt.maximum is not None and value > opt.maximum:
        raise bad
    return value


def defaults(schema) -> dict:
    """{name: default} of a schema (lists copied)."""
    return {o.name: (list(o.default) if isinstance(o.default, (list, tuple)) else o.default)
            for o in schema}


def add_flags(parser, schema, default_in_help: bool = False) -> None:
    """argparse flags for the schema's options that have one. Each defaults to None
    (= not given), so that only flags the user gave override the config file; `dest`
    is the option's name.

    A bool option's flag named by the option (`flag=True`) goes both ways (--x and
    --no-x); one given by name (`flag="--no-generate"`) is a switch that sets the
    opposite of the default. `default_in_help` adds "(default: ...)" to the help.
    """
    import argparse

    for o in schema:
        if o.flag is False or o.flag is None:
            continue
        names = (o.flag,) if isinstance(o.flag, str) else \
            o.flag if isinstance(o.flag, tuple) else (o.flag_name,)
        help_ = o.flag_help if o.flag_help is not None else o.help
        if default_in_help:
            if o.type is list:
                help_ += f" (default: {len(o.default or [])} in the code and the shipped config)"
            elif o.default is not None:
                help_ += f" (default: {o.default!r})"
        # argparse reads help as a %-format: "40% less memory" must reach it as %%.
        kwargs = dict(dest=o.name, default=None, help=help_.replace("%", "%%"))
        if o.metavar is not None:
            kwargs["metavar"] = o.metavar
        if o.type is bool:
            if o.flag is True:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs.update(action="store_const", const=not o.default)
        elif o.type is list:
            kwargs["action"] = "append"
            if o.flag_help is None:
                kwargs.setdefault("metavar", "TEXT")
                kwargs["help"] += " (repeat for more)"
        else:
            if o.type in (int, float):
                kwargs["type"] = o.type
            elif o.type is str and o.check is None and o.flag is True:
                kwargs["type"] = str
            if "metavar" not in kwargs and o.flag is True:
                kwargs["metavar"] = ("|".join(o.allowed()) if o.choices else
                                     {int: "N", float: "NUMBER"}.get(o.type, "TEXT"))
        kwargs.update(o.flag_args or {})
        parser.add_argument(*names, **kwargs)


def overrides_from_args(args, schema) -> dict:
    """{name: value} of the flags the user gave."""
    return {o.name: getattr(args, o.name) for o in schema
            if o.flag not in (False, None) and getattr(args, o.name, None) is not None}


def toml_value(value) -> str:
    """`value` as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return str(value)


def default_text(schema, title: str) -> str:
    """A config file with every key at its default, commented out, each under its help."""
    lines = [f"# {title}", ""]
    for o in schema:
        shown = "(not set)" if o.default is None else toml_value(o.default)
        lines += [f"# {o.help}", f"# {o.name} = {shown}", ""]
    return "\n".join(lines)
