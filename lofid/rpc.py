"""Old import path of the control socket's server: see lofid/control/. Kept only for
what lofid/cli.py still imports from here."""

from lofid.control.server import default_socket_path  # noqa: F401
