"""Where lofid keeps things: one rule for every XDG folder (lofid.paths).

Bug fixed here: the folders were worked out in five modules, and only the library
followed the XDG spec's rule that a relative value is ignored. With a relative
$XDG_CONFIG_HOME, $XDG_DATA_HOME or $XDG_RUNTIME_DIR the config file, the model
folder and the control socket lay under whatever folder the command was started
in: `lofid ctl` run from one folder did not find the daemon started from another,
and the daemon under systemd (started in /) did not read the config or the models
that `lofid config` and `lofid models` named from the user's shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lofid import library, models
from lofid.settings import run as config
from lofid.control import server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(monkeypatch, tmp_path):
    """A fresh HOME, the working directory inside it, and no XDG or HF variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME",
                 "LOFID_LIBRARY", "LOFID_MODELS", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(home)
    return home


def test_absolute_values_are_followed(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "data" / "lofid" / "models").mkdir(parents=True)
    assert config.default_path() == tmp_path / "cfg" / "lofid" / "config.toml"
    assert library.default_root() == tmp_path / "data" / "lofid" / "loops"
    assert tmp_path / "data" / "lofid" / "models" in models.search_paths()
    assert server.default_socket_path() == tmp_path / "run" / "lofid" / "lofid.sock"


def test_unset_values_give_the_defaults(home):
    (home / ".local" / "share" / "lofid" / "models").mkdir(parents=True)
    assert config.default_path() == home / ".config" / "lofid" / "config.toml"
    assert library.default_root() == home / ".local" / "share" / "lofid" / "loops"
    assert home / ".local" / "share" / "lofid" / "models" in models.search_paths()
    assert server.default_socket_path() == Path(f"/tmp/lofid-{os.getuid()}/lofid/lofid.sock")


def test_relative_values_are_ignored_everywhere(home, monkeypatch):
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(name, "here")
    (home / "here" / "lofid" / "models").mkdir(parents=True)         # the relative one
    (home / ".local" / "share" / "lofid" / "models").mkdir(parents=True)
    assert config.default_path() == home / ".config" / "lofid" / "config.toml"
    assert library.default_root() == home / ".local" / "share" / "lofid" / "loops"
    found = [p.resolve() for p in models.search_paths()]
    assert (home / ".local" / "share" / "lofid" / "models").resolve() in found
    assert (home / "here" / "lofid" / "models").resolve() not in found
    assert server.default_socket_path() == Path(f"/tmp/lofid-{os.getuid()}/lofid/lofid.sock")


@pytest.mark.slow
def test_lofid_config_names_the_same_file_from_any_folder(home, tmp_path):
    """What a user sees: `lofid config` prints the config file it reads, and that is
    one file whichever folder the command is started in."""
    env = dict(os.environ, XDG_CONFIG_HOME="rel", PYTHONPATH=str(ROOT))
    printed = set()
    for cwd in (home, tmp_path):
        r = subprocess.run([sys.executable, "-m", "lofid.cli", "config"], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        printed.add(r.stdout.strip())
    assert printed == {str(home / ".config" / "lofid" / "config.toml")}


def test_the_hugging_face_cache_follows_huggingface_hub(home, tmp_path, monkeypatch):
    # Its own rule, the one huggingface_hub follows, so models other tools fetched
    # are found: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub.
    assert models.hf_cache_dir() == home / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert models.hf_cache_dir() == tmp_path / "cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", "~/hf")
    assert models.hf_cache_dir() == home / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert models.hf_cache_dir() == tmp_path / "hub"
