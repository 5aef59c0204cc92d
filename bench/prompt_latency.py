"""From audio.prompt naming a scene already in the library to its crossfade starting.

    python bench/prompt_latency.py [--sizes 1280x720,1920x1080] [--count 8] [--every 12]
                                   [--baseline-count 4] [--baseline-every 20]
                                   [--baseline-rev 7478440]

Two scenes' loops are painted first into a temporary library, at the size `lofid run`
paints them for that output (at most 1280 wide, 60 frames at 10 fps). Then, for each
output size, `lofid run --socket ... -o null -o FILE.mp4 --realtime --no-generate`
runs in its own process; once it plays (and has had a few seconds to settle), the
benchmark sends audio.prompt for the scene not showing, `--count` times, alternating,
`--every` seconds apart (more than the director's 10 s between audio-driven changes),
and measures from sending the request to the first frame of its crossfade going out:
the `wall` time in the player's crossfade event (the clock at which the player handed
that frame to the outputs), and, as a cross-check, when the event reached this client.
The MP4 written beside the null output is read back afterwards: at each frame an event
names there must be a keyframe, and the picture must move from one scene to the other
over the crossfade that starts there.

The baseline is the code at `--baseline-rev` (default 7478440: the last commit before
live crossfades) run the same way, whose requests go through the old path (load the whole loop, prepare and
encode it, cross at a planned keyframe); its events have no `wall`, so its figure is
the event's arrival.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SCENES = ("rainy night, coffee shop, jazz lofi", "snowy winter evening, bedroom, fairy lights")


class Client:
    """A bare msgpack-RPC client: requests, and notifications with their arrival time."""

    def __init__(self, path: Path):
        import msgpack
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(path))
        self._packer = msgpack.Packer()
        self._unpacker = msgpack.Unpacker(raw=False)
        self._next_id = 0
        self._replies: dict[int, tuple] = {}
        self.events: list[tuple[float, str, dict]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:                     # closed by close()
                return
            if not data:
                return
            now = time.time()
            self._unpacker.feed(data)
            for message in self._unpacker:
                with self._cond:
                    if message[0] == 1:
                        self._replies[message[1]] = (message[2], message[3])
                    elif message[0] == 2:
                        self.events.append((now, message[1], message[2][0]))
                    self._cond.notify_all()

    def request(self, method: str, *params, timeout: float = 10.0):
        """(sent at, result) of a request."""
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        data = self._packer.pack([0, mid, method, list(params)])
        sent = time.time()
        self._sock.sendall(data)
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._replies, timeout=timeout):
                raise TimeoutError(f"no answer to {method}")
            error, result = self._replies.pop(mid)
        if error:
            raise RuntimeError(f"{method}: {error}")
        return sent, result

    def wait_event(self, name: str, after: float, timeout: float) -> tuple[float, dict] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, n, payload in self.events:
                    if n == name and at >= after:
                        return at, payload
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    if time.monotonic() >= deadline:
                        return None

    def close(self) -> None:
        self._sock.close()


def paint_library(root: Path) -> None:
    from lofid.generators import get
    from lofid.library import Library
    from lofid.scene import parse

    library = Library(root)
    paint = get("procedural")
    for text in SCENES:
        for seed in (1, 2):
            library.put(paint(parse(text), seed, (1280, 720), 60, 10.0))


def old_code(rev: str, into: Path) -> list[str]:
    """The command prefix that runs lofid as it was at `rev`: its package extracted
    from git, run with site-packages on the path but without the editable install's
    import hook (which would pick the working tree)."""
    into.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "lofid"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    import site
    os.environ["LOFID_BENCH_OLD_PATH"] = os.pathsep.join([str(into)] + site.getsitepackages())
    return [sys.executable, "-S", "-m", "lofid.cli"]


def measure(cmd: list[str], env: dict, library: Path, size: str, count: int, every: float,
            work: Path) -> dict:
    sock = work / f"lofid-{size}.sock"
    video = work / f"prompts-{size}.mp4"
    log = open(work / f"lofid-{size}.log", "w")
    proc = subprocess.Popen(cmd + ["--library", str(library), "run", "--socket", str(sock),
                                   "-o", "null", "-o", str(video), "--realtime",
                                   "--size", size, "--no-generate", "--rotate", "100000",
                                   "--scene", SCENES[0]],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    rows = []
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lofid did not start; see {log.name}")
            time.sleep(0.05)
        client = Client(sock)
        client.request("subscribe", ["crossfade", "scene_changed"])
        while client.request("status")[1]["clock"]["frame"] < 30:
            time.sleep(0.1)
        time.sleep(4.0)          # the director keeps each scene's first frames at hand
        for i in range(count):
            text = SCENES[(i + 1) % 2]
            sent, answer = client.request("audio.prompt", text, {"duration_sec": 1})
            got = client.wait_event("crossfade", sent, timeout=every + 20)
            if got is None:
                rows.append((text, answer, None, None, None))
                continue
            arrived, payload = got
            wall = payload.get("wall")
            rows.append((text, answer, None if wall is None else wall - sent, arrived - sent,
                         payload))
            time.sleep(max(0.0, sent + every - time.time()))
        client.request("shutdown")
        client.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return {"rows": rows, "video": video}


def cross_check(video: Path, rows: list) -> list[str]:
    """What the file shows at each crossfade the events name."""
    import av
    import numpy as np

    wanted = {}
    for *_, payload in rows:
        if payload:
            f, n = payload["frame"], payload["frames"]
            wanted[payload["frame"]] = n
    need = set()
    for f, n in wanted.items():
        need |= {f - 2, f - 1, f, f + n // 2, f + n + 2}
    pictures, keyframes = {}, set()
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        start = None
        for frame in c.decode(stream):
            index = round(float(frame.pts * frame.time_base) * 30)
            start = index if start is None else start
            if frame.key_frame:
                keyframes.add(index)
            if index in need:
                pictures[index] = frame.to_ndarray(format="rgb24")[::8, ::8].astype(float)
    lines = []
    for f, n in sorted(wanted.items()):
        try:
            before, last, mid, after = (pictures[f - 2], pictures[f - 1], pictures[f + n // 2],
                                        pictures[f + n + 2])
        except KeyError:
            lines.append(f"frame {f}: not in the file")
            continue
        still = np.abs(last - before).mean()
        moved = np.abs(after - last).mean()
        halfway = np.abs(mid - last).mean()
        ok = f in keyframes and moved > 4 * max(still, 1.0) and 0.15 * moved < halfway < moved
        lines.append(f"frame {f}: keyframe {f in keyframes}, mean change in the frame before "
                     f"{still:.1f}, across the crossfade {moved:.1f}, halfway {halfway:.1f}: "
                     f"{'ok' if ok else 'NOT AS EXPECTED'}")
    return lines


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return "no crossfade"
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (f"p50 {statistics.median(ms):7.1f}  p95 {p95:7.1f}  max {ms[-1]:7.1f} ms "
            f"(n={len(ms)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--every", type=float, default=12.0)
    ap.add_argument("--baseline-count", type=int, default=4)
    ap.add_argument("--baseline-every", type=float, default=20.0,
                    help="seconds between the baseline's prompts (its switches take seconds)")
    ap.add_argument("--baseline-rev", default="7478440",
                    help="the commit whose lofid is the baseline (default: the last one "
                         "before live crossfades)")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prompt-latency-"))
    library = work / "library"
    paint_library(library)
    print(f"machine: {os.uname().nodename} {os.uname().machine}, {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; load average before "
          f"{os.getloadavg()[0]:.2f}")
    print(f"library: {SCENES[0]!r} and {SCENES[1]!r}, two loops each, 1280x720, "
          f"60 frames at 10 fps; work folder {work}")
    new_cmd = [sys.executable, "-m", "lofid.cli"]
    runs = [("live (this tree)", new_cmd, dict(os.environ), a.count, a.every)]
    if a.baseline_count > 0:
        old = old_code(a.baseline_rev, work / "old")
        env = dict(os.environ, PYTHONPATH=os.environ.pop("LOFID_BENCH_OLD_PATH"))
        runs.append((f"old path ({a.baseline_rev})", old, env, a.baseline_count,
                     a.baseline_every))
    for size in a.sizes.split(","):
        for name, cmd, env, count, every in runs:
            folder = work / name.split()[0]
            folder.mkdir(exist_ok=True)
            result = measure(cmd, env, library, size, count, every, folder)
            rows = result["rows"]
            print(f"\n{size}@30, {name}: {count} prompts, {every:g} s apart")
            for text, answer, wall, arrived, payload in rows:
                frame = payload["frame"] if payload else None
                print(f"  {text[:28]:28} answer {answer.get('action', '-'):9} "
                      + (f"crossfade at frame {frame}: " if payload else "no crossfade")
                      + (f"first frame out {wall * 1000:7.1f} ms, " if wall is not None else "")
                      + (f"event here {arrived * 1000:7.1f} ms" if arrived is not None else ""))
            walls = [w for _, _, w, _, _ in rows if w is not None]
            arrivals = [r for _, _, _, r, _ in rows if r is not None]
            if walls:
                print(f"  request -> first crossfade frame out: {summary(walls)}")
            print(f"  request -> crossfade event received: {summary(arrivals)}")
            for line in cross_check(result["video"], rows):
                print(f"  file check: {line}")
    print(f"\nload average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
