"""What the web page's tests share: Debian's chromium driven by Playwright (no browser
is downloaded), a free port, and reading the page's video into numbers."""

from __future__ import annotations

import json
import shutil
import socket
import urllib.request

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


# The video's current picture, drawn to a canvas and read back (RGBA rows).
FRAME_JS = """([w, h]) => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, w, h);
  return Array.from(g.getImageData(0, 0, w, h).data);
}"""


def frame(page, w: int = 96, h: int = 54) -> np.ndarray:
    data = np.array(page.evaluate(FRAME_JS, [w, h]), dtype=np.float32)
    return data.reshape(h, w, 4)[..., :3]


def page_token(base: str) -> str:
    """The token the page served on 127.0.0.1 carries (what its script sends)."""
    html = urllib.request.urlopen(base + "/", timeout=10).read().decode()
    return html.split('name="lofid-token" content="', 1)[1].split('"', 1)[0]


def api(base: str, token: str, method: str, *params):
    req = urllib.request.Request(base + "/api/" + method, data=json.dumps(params).encode(),
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())["result"]


def web_ready(port: int):
    """For helpers.start_daemon's `ready`: the socket answers and the page's port too."""
    from helpers import answers

    def ready(daemon) -> bool:
        if not answers(daemon.sock):
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False
    return ready
