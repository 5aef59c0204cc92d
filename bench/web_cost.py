"""What the web page costs the daemon, and how long a click takes to show.

    python bench/web_cost.py [--seconds 30] [--size 1280x720] [--clients 5] [--clicks 6]

1. CPU: `lofid run --web` plays for --seconds with no page open, then again with
   --clients pages of headless chromium (Debian's) each playing the live stream. The
   daemon's own CPU time (user + system, all its threads, from /proc) per second of
   stream is compared: the difference is what serving the pages costs (target: at
   most 0.02 CPU-s per stream second for 5).
2. Click to picture: on one page, a scene button is clicked --clicks times (scenes
   whose loops are in the library, so no painting waits); each time it records the
   page's buffer (how far the video plays behind the newest picture it has), the time
   until the page's own scene name changes (the daemon's scene_changed event, over
   server-sent events), and until the picture on the page's video changes (the
   crossfade under way: the mean colour difference of a 32x18 copy of the video over
   8 levels; the rain and the lights of one scene alone move it by about 1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]
SCENES = ["coffee_shop", "rainy_window", "library", "rooftop_night"]

CLICK_JS = """async ([scene, level]) => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas'); c.width = 32; c.height = 18;
  const g = c.getContext('2d');
  const grab = () => { g.drawImage(v, 0, 0, 32, 18); return g.getImageData(0, 0, 32, 18).data; };
  const base = grab();
  const label = document.getElementById('scene').textContent;
  const b = v.buffered;
  const buffer = b.length ? b.end(b.length - 1) - v.currentTime : -1;
  const t0 = performance.now();
  document.querySelector(`button.scene[data-scene="${scene}"]`).click();
  let named = -1;
  return await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now() - t0;
      if (named < 0 && document.getElementById('scene').textContent !== label) named = now;
      const d = grab();
      let s = 0;
      for (let i = 0; i < d.length; i += 4)
        s += Math.abs(d[i] - base[i]) + Math.abs(d[i + 1] - base[i + 1]) + Math.abs(d[i + 2] - base[i + 2]);
      s /= d.length / 4 * 3;
      if (s > level && named >= 0) resolve({buffer, named, picture: now});
      else if (now > 30000) resolve({buffer, named, picture: -1});
      else setTimeout(tick, 10);
    };
    tick();
  });
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(sock: Path) -> dict:
    from lofid.control.client import Client
    client = Client(sock, timeout=30)
    try:
        return client.call("status")
    finally:
        client.close()


def start(tmp: Path, library: Path, size: str, port: int):
    sock = tmp / f"lofid-{port}.sock"
    log = open(tmp / f"lofid-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "lofid", "--library", str(library), "run",
                             "--web", str(port), "--socket", str(sock), "--size", size,
                             "--no-generate", "--scene", SCENES[-1], "--rotate", "3600"],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if status(sock)["clock"]["frame"] > 0:
                return proc, sock
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("lofid did not start: see " + log.name)


def measure(proc, sock, seconds: float) -> tuple[float, float]:
    """(stream seconds, daemon CPU seconds) over `seconds` of wall time."""
    s0, c0 = status(sock)["clock"]["seconds"], cpu_seconds(proc.pid)
    time.sleep(seconds)
    s1, c1 = status(sock)["clock"]["seconds"], cpu_seconds(proc.pid)
    return s1 - s0, c1 - c0


def stop(proc) -> None:
    proc.terminate()
    proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=6)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from lofid.generators import get
    from lofid.library import Library
    from lofid.scene import parse

    tmp = Path(tempfile.mkdtemp())
    library = Library(tmp / "library")
    w, h = (int(v) for v in a.size.split("x"))
    loop_size = (min(w, 1280), min(w, 1280) * h // w)
    paint = get("procedural")
    for seed, scene in enumerate(SCENES, 1):
        library.put(paint(parse(scene), seed, loop_size, 60, 10.0))

    rows = []
    port = free_port()
    proc, sock = start(tmp, library.root, a.size, port)
    try:
        time.sleep(3)
        rows.append(("no page", *measure(proc, sock, a.seconds)))
    finally:
        stop(proc)

    port = free_port()
    proc, sock = start(tmp, library.root, a.size, port)
    clicks = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            pages = []
            for _ in range(a.clients):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/")
                pages.append(page)
            for page in pages:
                page.wait_for_function("document.getElementById('video').readyState >= 3",
                                       timeout=60000)
            time.sleep(3)
            watching = status(sock)
            rows.append((f"{a.clients} pages", *measure(proc, sock, a.seconds)))
            lag = [page.evaluate("(() => { const v = document.getElementById('video');"
                                 " return v.buffered.end(v.buffered.length - 1) - v.currentTime;"
                                 " })()") for page in pages]
            for page in pages[1:]:
                page.close()
            page = pages[0]
            for i in range(a.clicks):
                clicks.append(page.evaluate(CLICK_JS, [SCENES[i % len(SCENES)], 8]))
                time.sleep(4)            # the crossfade ends before the next click
            browser.close()
    finally:
        stop(proc)

    print(f"{'what':<12} {'stream s':>9} {'CPU s':>8} {'CPU s per stream s':>19}")
    per = []
    for what, stream_s, cpu in rows:
        per.append(cpu / stream_s)
        print(f"{what:<12} {stream_s:>9.1f} {cpu:>8.2f} {cpu / stream_s:>19.4f}")
    print(f"added by {a.clients} pages: {per[1] - per[0]:+.4f} CPU-s per stream second "
          f"(target <= 0.02)")
    print(f"outputs while watched: {json.dumps(watching['outputs'])}")
    print("pages' buffer (s behind the newest picture they hold): "
          + ", ".join(f"{x:.2f}" for x in lag))
    print(f"{'click':>5} {'buffer s':>9} {'name ms':>8} {'picture ms':>11}")
    for i, c in enumerate(clicks, 1):
        print(f"{i:>5} {c['buffer']:>9.2f} {c['named']:>8.0f} {c['picture']:>11.0f}")
    ok = [c for c in clicks if c["picture"] >= 0]
    if ok:
        print(f"median: buffer {statistics.median(c['buffer'] for c in ok):.2f} s, "
              f"name {statistics.median(c['named'] for c in ok):.0f} ms, "
              f"picture {statistics.median(c['picture'] for c in ok):.0f} ms")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
