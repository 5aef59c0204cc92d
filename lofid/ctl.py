"""Old import path of the control socket's client: see lofid/control/client.py."""

from lofid.control.client import Client, ControlError, NoDaemon  # noqa: F401
