"""A running `lofid run`: app.py (the Daemon: startup, run and shutdown in a fixed
order), systemd.py (sd_notify), config_watch.py (reload on change). What the control
socket can do to it is lofid/control/api.py; its outputs are lofid/player/router.py."""
