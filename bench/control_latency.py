"""Control socket round trips while a 1080p30 stream runs.

    python bench/control_latency.py [--seconds 20] [--clients 10] [--rate 500]

Starts `lofid run -o null --realtime --size 1920x1080 --socket` (the player encoding
a 1080p30 stream in real time), then `--clients` clients send `status` requests at
`--rate` requests per second in all, and the round trips are timed. Target (issue):
p99 at most 2 ms with 10 clients at 500 requests/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second, all clients")
    ap.add_argument("--size", default="1920x1080")
    a = ap.parse_args()
    from lofid.control.client import Client

    tmp = Path(tempfile.mkdtemp())
    sock = tmp / "run" / "lofid.sock"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lofid.cli", "--library", str(tmp / "lib"), "run", "-o", "null",
         "--realtime", "--size", a.size, "--socket", str(sock), "--scene", "rainy night, coffee shop"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(5)   # past the first loop's preparation: the steady state is measured
        times: list[float] = []
        lock = threading.Lock()
        interval = a.clients / a.rate

        def client():
            c = Client(sock)
            mine = []
            next_at = time.perf_counter()
            end = next_at + a.seconds
            while next_at < end:
                now = time.perf_counter()
                if now < next_at:
                    time.sleep(next_at - now)
                t = time.perf_counter()
                c.call("status")
                mine.append(time.perf_counter() - t)
                next_at += interval
            c.close()
            with lock:
                times.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        times.sort()
        p = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000  # noqa: E731
        print(f"{len(times)} status requests from {a.clients} clients at {a.rate:g}/s for "
              f"{a.seconds:g} s, while lofid streams {a.size}@30 in real time (load average "
              f"{os.getloadavg()[0]:.2f})")
        print(f"round trip ms: p50 {p(0.5):.3f}  p90 {p(0.9):.3f}  p99 {p(0.99):.3f}  "
              f"max {times[-1] * 1000:.3f}  mean {statistics.mean(times) * 1000:.3f}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


if __name__ == "__main__":
    main()
