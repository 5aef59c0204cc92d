"""Where lofid keeps things: the XDG base directories, worked out in one place.

Each is read from the environment when asked (never cached), so a test or a
service unit that sets the variable is obeyed. As the XDG Base Directory spec says,
a variable that is unset, empty or not an absolute path is ignored and the default
taken: a relative one would name a different folder for every working directory
(the daemon under systemd runs in /, the command line wherever the user is).

It is part of the ground floor: it imports nothing else of lofid.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(os.path.expanduser("~")) / default


def config_home() -> Path:
    """$XDG_CONFIG_HOME, else ~/.config."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def data_home() -> Path:
    """$XDG_DATA_HOME, else ~/.local/share."""
    return _xdg("XDG_DATA_HOME", os.path.join(".local", "share"))


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR, else /tmp/lofid-UID (private to the user: see lofid.control.server)."""
    value = os.environ.get("XDG_RUNTIME_DIR", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(f"/tmp/lofid-{os.getuid()}")


# --------------------------------------------------------------------------- lofid's own

def config_file() -> Path:
    """The config file `lofid run` reads when none is named."""
    return config_home() / "lofid" / "config.toml"


def systemd_user_unit() -> Path:
    """Where `lofid service install` writes the user unit."""
    return config_home() / "systemd" / "user" / "lofid.service"


def library_dir() -> Path:
    """$LOFID_LIBRARY, else the loops folder under the data home."""
    explicit = os.environ.get("LOFID_LIBRARY")
    if explicit:
        return Path(explicit).expanduser()
    return data_home() / "lofid" / "loops"


def models_dir() -> Path:
    """lofid's own model folder, under the data home."""
    return data_home() / "lofid" / "models"


def socket_path() -> Path:
    """The control socket, under the runtime folder."""
    return runtime_dir() / "lofid" / "lofid.sock"


def hf_cache() -> Path:
    """The Hugging Face hub cache. Not the XDG rule: the one huggingface_hub itself
    follows ($HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
    each with ~ expanded), so lofid finds what other Hugging Face tools downloaded."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"
