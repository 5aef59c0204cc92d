"""A running `lofid run`: app.py (the Daemon: startup, run and shutdown in a fixed
order), systemd.py (sd_notify), config_watch.py (reload on change). What the control
socket can do to it is lofid/control/api.py; its outputs are lofid/player/router.py."""

from __future__ import annotations

# Old import path, for the one test that still uses it.
from lofid.daemon.systemd import SystemdNotifier  # noqa: F401
