"""Telling systemd how a Type=notify user service is doing (sd_notify)."""

from __future__ import annotations

import threading


class SystemdNotifier:
    """sd_notify for a Type=notify user service: READY=1 once the first frame is out,
    STATUS= lines, WATCHDOG=1 only while the output clock advances (so systemd
    restarts a wedged daemon), STOPPING=1. Does nothing outside systemd."""

    def __init__(self, player, describe=None, environ=None):
        import os
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() else None
        self.player = player
        self.describe = describe or (lambda: f"playing, {player.seconds:.0f} s out")
        self._stop = threading.Event()
        self._thread = None
        self.sent: list[str] = []

    def send(self, message: str) -> None:
        if not self.address:
            return
        import socket
        address = self.address
        if address.startswith("@"):          # abstract namespace
            address = "\0" + address[1:]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(message.encode(), address)
                self.sent.append(message)
            except OSError:
                pass                          # systemd gone: nothing to tell

    def start(self) -> None:
        if not self.address:
            return
        self._thread = threading.Thread(target=self._run, name="sd_notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = self.player.frame
        while not self._stop.wait(0.1):       # READY once a frame has gone out
            if self.player.frame > start:
                self.send("READY=1\nSTATUS=" + self.describe())
                break
        every = min(self.watchdog_s / 2, 5.0) if self.watchdog_s else 5.0
        last = self.player.frame
        while not self._stop.wait(every):
            now = self.player.frame
            if now > last:                    # a stalled clock gets no ping
                self.send(("WATCHDOG=1\n" if self.watchdog_s else "") + "STATUS=" + self.describe())
            last = now

    def stop(self) -> None:
        self._stop.set()
        self.send("STOPPING=1")
        if self._thread is not None:
            self._thread.join(timeout=2)
