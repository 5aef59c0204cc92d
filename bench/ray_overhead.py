"""Remote generation on Ray: what it adds per loop, and how filling scales with workers.

Starts a local Ray cluster (CPU only), then
1. overhead: the same painter loop made here and by one worker on the cluster, several
   times each, timed as the daemon uses it: from the request to the loop stored in the
   library and ready to play. Here: generate + Library.put (which encodes the frames);
   on the cluster: Cluster.make (the worker paints and encodes) + Library.put (which
   writes the worker's bytes) + the decoding of the first frame, all the player waits
   for before it shows the loop. The overhead is the median remote time minus the
   median local time (target: at most 0.3 s per loop);
2. fill speed: the same set of loops made by one worker, then by two working at once
   (target: two at least 1.8 times as fast, on a machine with a core free for each).

Run: python bench/ray_overhead.py [--size 640x360 --frames 24 --repeats 7 --loops 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ray_cluster import LocalRay  # noqa: E402  (the tests' local cluster)

from lofid.generators import procedural  # noqa: E402
from lofid.generators.cluster import Cluster, job  # noqa: E402
from lofid.library import Library  # noqa: E402
from lofid.scene import parse  # noqa: E402


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent working since it started (every process:
    the workers, Ray's own, this one), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def fill(cluster: Cluster, jobs: list[dict], threads: int) -> tuple[float, float]:
    """(seconds to make every job, `threads` at a time (one per worker); cores the
    machine kept busy meanwhile, on average)."""
    todo = list(jobs)
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not todo:
                    return
                one = todo.pop()
            cluster.make(one)

    t0, busy0 = time.monotonic(), busy_seconds()
    running = [threading.Thread(target=work) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    seconds = time.monotonic() - t0
    return seconds, (busy_seconds() - busy0) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--repeats", type=int, default=7, help="loops per side for the overhead")
    ap.add_argument("--loops", type=int, default=8, help="loops in the fill comparison")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    spec = parse("rainy night, coffee shop")

    ray = LocalRay(cpus=4)
    print(f"ray start: {ray.start():.1f} s")
    folder = Path(tempfile.mkdtemp(prefix="lofid-bench-ray-"))
    try:
        # One library each: the same seed makes the same key on both sides.
        here_lib, there_lib = Library(folder / "here"), Library(folder / "there")
        one = Cluster(ray.address, namespace="bench-one", workers=1, gpus=0)
        one.connect()
        one.make(job(spec, 0, (w, h), args.frames, args.fps, "procedural", {}))   # warm
        local, remote = [], []
        for seed in range(1, args.repeats + 1):
            t0 = time.monotonic()
            loop = procedural.generate(spec, seed, (w, h), args.frames, args.fps)
            here_lib.put(loop)
            local.append(time.monotonic() - t0)
            t0 = time.monotonic()
            loop = one.make(job(spec, seed, (w, h), args.frames, args.fps, "procedural", {}))
            there_lib.put(loop)
            loop.wait_frame(0)
            remote.append(time.monotonic() - t0)
            # The rest decodes while the loop plays; here it must not overlap the next.
            loop.wait_frame(loop.n_frames - 1)
        lm, rm = statistics.median(local), statistics.median(remote)
        print(f"painter loop {w}x{h}, {args.frames} frames, made and stored, ready to play: "
              f"here {lm:.3f} s, on the cluster {rm:.3f} s (medians of {args.repeats}); "
              f"overhead {rm - lm:+.3f} s per loop (target <= 0.3)")

        jobs = [job(spec, 100 + i, (w, h), args.frames, args.fps, "procedural", {})
                for i in range(args.loops)]
        t1, cores1 = fill(one, jobs, 1)
        one.close()
        two = Cluster(ray.address, namespace="bench-two", workers=2, gpus=0)
        two.connect()
        two.make(jobs[0])                       # warm both names' imports once
        fill(two, jobs[:2], 2)
        t2, cores2 = fill(two, jobs, 2)
        two.close()
        print(f"fill {args.loops} loops: one worker {t1:.2f} s, two workers {t2:.2f} s: "
              f"{t1 / t2:.2f}x (target >= 1.8 with a core for each)")
        # Whether the machine had the cores: two workers that keep all of them busy
        # cannot go faster however well they scale.
        print(f"cores busy on average (of {os.cpu_count()}): one worker {cores1:.2f}, "
              f"two workers {cores2:.2f}")
    finally:
        ray.remove()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
