"""The systemd side: sd_notify on a real datagram socket, the unit, the default config."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from lofid.settings.run import RunConfig, default_text, validate
from lofid.daemon.systemd import SystemdNotifier


def lofid(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "lofid.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def listen(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)
    got = []

    def read():
        while True:
            try:
                got.append(s.recv(4096).decode())
            except socket.timeout:
                if getattr(read, "done", False):
                    return
            except OSError:
                return
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return s, got, (lambda: (setattr(read, "done", True), t.join(2), s.close()))


def test_the_daemon_says_ready_pings_while_it_plays_and_says_stopping(tmp_path):
    sock, got, stop = listen(tmp_path / "notify")
    r = lofid("--library", str(tmp_path / "lib"), "run", "-o", "null", "--realtime",
              "--duration", "3", "--size", "160x90",
              env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"})
    stop()
    assert r.returncode == 0, r.stderr
    kinds = [m.split("\n")[0] for m in got]
    assert kinds[0] == "READY=1" and "STATUS=" in got[0]
    assert kinds.count("WATCHDOG=1") >= 3            # every half second while playing
    assert kinds[-1] == "STOPPING=1"


class _StuckPlayer:
    """A clock that moves once and then never again: a wedged daemon."""
    def __init__(self):
        self.frame = 0
        self.seconds = 0.0


def test_a_wedged_clock_gets_no_watchdog_pings(tmp_path):
    sock, got, stop = listen(tmp_path / "notify")
    player = _StuckPlayer()
    n = SystemdNotifier(player, environ={"NOTIFY_SOCKET": str(tmp_path / "notify"),
                                         "WATCHDOG_USEC": "200000"})
    n.start()
    player.frame = 1                                  # the first frame goes out...
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.45)                                  # ...then nothing for four intervals
    n.stop()
    stop()
    kinds = [m.split("\n")[0] for m in got]
    assert kinds[0] == "READY=1" and "WATCHDOG=1" not in kinds and kinds[-1] == "STOPPING=1"


def test_the_default_config_is_every_key_and_loads(tmp_path):
    text = lofid("config", "--print-default").stdout
    assert text == default_text()
    values = "\n".join(line[2:] for line in text.splitlines()
                       if re.match(r"^# [a-z_]+ = ", line) and "(not set)" not in line)
    import tomllib
    loaded = tomllib.loads(values)
    assert validate(RunConfig(**loaded)) == RunConfig(**loaded)
    keys = {f for f in RunConfig.__dataclass_fields__}
    assert {m.group(1) for m in re.finditer(r"^# ([a-z_]+) = ", text, re.M)} == keys


def test_service_install_writes_a_unit_systemd_accepts(tmp_path):
    r = lofid("service", "install", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    unit = tmp_path / "systemd" / "user" / "lofid.service"
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    exec_start = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
    assert os.path.isabs(exec_start) and os.access(exec_start, os.X_OK)
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
