"""A running `lofid run`: app.py (the Daemon: startup, run and shutdown in a fixed
order), systemd.py (sd_notify), config_watch.py (reload on change). What the control
socket can do to it is lofid/control/api.py; its outputs are lofid/player/router.py."""

from __future__ import annotations

# Old import paths, for code that still uses them.
from lofid.control.api import Control  # noqa: F401
from lofid.daemon.config_watch import ConfigReloader  # noqa: F401
from lofid.daemon.systemd import SystemdNotifier  # noqa: F401
from lofid.player.router import OutputSet, is_live  # noqa: F401
