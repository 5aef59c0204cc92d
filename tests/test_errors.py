"""One error hierarchy: every error lofid explains is a LofidError carrying its exit
code, and the CLI's edge is the one place that maps it; nothing below the CLI
imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lofid.settings import ConfigError
from lofid.control.client import ControlError, NoDaemon
from lofid.director import NothingToPlay
from lofid.errors import Failure, LofidError, UserError
from lofid.generators import UnknownGenerator
from lofid.library import CorruptLoopError, LibraryError
from lofid.export import ExportError
from lofid.loras import LoraError
from lofid.models import ModelError
from lofid.outputs.base import OutputError
from lofid.outputs.network import NetworkTargetError
from lofid.outputs.window import WindowOptionError
from lofid.control.server import AlreadyRunning, SocketError
from lofid.scene import SceneSpecError

PACKAGE = Path(__file__).resolve().parent.parent / "lofid"


@pytest.mark.parametrize("error, kind", [
    (ConfigError, UserError), (ControlError, UserError), (NothingToPlay, UserError),
    (UnknownGenerator, UserError), (LoraError, UserError), (ModelError, UserError),
    (SceneSpecError, UserError), (SocketError, UserError), (AlreadyRunning, UserError),
    (NoDaemon, Failure), (LibraryError, Failure), (CorruptLoopError, Failure),
    (ExportError, Failure), (OutputError, Failure), (NetworkTargetError, Failure),
    (WindowOptionError, Failure),
])
def test_each_error_lofid_explains_carries_its_exit_code(error, kind):
    assert issubclass(error, kind)
    assert error("x").exit_code == (2 if kind is UserError else 1)


def test_errors_that_were_value_errors_still_are():
    # Callers (and other programs using lofid as a library) catch these as ValueError.
    for error in (ConfigError, UnknownGenerator, LoraError, ModelError, SceneSpecError,
                  ExportError):
        assert issubclass(error, ValueError)


def test_a_bug_is_not_a_lofid_error():
    assert not issubclass(ValueError, LofidError)
    assert not issubclass(KeyError, LofidError)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:   # relative: resolved against the module's own package
                package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
                base = ".".join(package[:len(package) - node.level + 1])
                module = f"{base}.{module}" if module else base
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def test_nothing_below_the_cli_imports_it():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if rel == "lofid/__main__.py" or rel.startswith("lofid/cli/"):
            continue   # the CLI itself, and what starts it
        if any(n == "lofid.cli" or n.startswith("lofid.cli.") for n in _imports(path)):
            offenders.append(rel)
    assert offenders == []


def test_main_ends_any_lofid_error_in_one_line_with_its_code(tmp_path, capsys):
    # A config file that cannot be read reaches main as a ConfigError (a UserError).
    from lofid.cli import main
    bad = tmp_path / "lofid.toml"
    bad.write_text("fps = [1, 2\n")
    assert main(["run", "--config", str(bad), "-o", "null"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lofid: error: ") and "Traceback" not in err[0]


def test_a_value_the_generator_cannot_take_is_bad_input_and_still_a_value_error():
    from lofid.errors import BadArgument
    from lofid.generators import procedural
    from lofid.scene import parse
    with pytest.raises(BadArgument) as caught:
        procedural.generate(parse("coffee shop"), 1, (64, 64), 1, 12)   # one frame is no loop
    assert isinstance(caught.value, ValueError) and caught.value.exit_code == 2


def test_a_bug_inside_generate_is_not_reported_as_bad_input(tmp_path, monkeypatch):
    # `lofid generate` used to turn every ValueError from the generator into "bad input",
    # exit 2: a bug looked like the user's mistake. Only the generator's own BadArgument
    # (and the other UserErrors) are the user's; anything else keeps its traceback.
    from lofid import generators
    from lofid.cli import main

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(generators, "get", lambda name: broken)
    with pytest.raises(ValueError, match="broadcast"):
        main(["generate", "coffee shop", "-o", str(tmp_path / "x.mp4"), "--generator",
              "procedural", "--no-library"])


def test_main_reports_a_generator_bad_argument_in_one_line(tmp_path, monkeypatch, capsys):
    from lofid import generators
    from lofid.cli import main
    from lofid.errors import BadArgument

    def picky(*args, **kwargs):
        raise BadArgument("frames must be an integer >= 2, got 1")

    monkeypatch.setattr(generators, "get", lambda name: picky)
    assert main(["generate", "coffee shop", "-o", str(tmp_path / "x.mp4"), "--generator",
                 "procedural", "--no-library"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lofid: error: frames must be an integer >= 2, got 1"]
