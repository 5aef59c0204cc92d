"""Loops made on a Ray cluster: the generator "ray".

- worker.py: the actor on each GPU (loads the pipeline once, keeps it).
- link.py: this side: connect, start or find the workers, send a loop, retry once.
- batch.py: many loops over all workers into the library, resumable.

`generate` is the generator interface of lofid.generators (used by `lofid generate
--ray`); `RemoteGenerator` is what the daemon uses: the same, but it never lets the
cluster hold up the picture: while the cluster cannot be reached it paints the loop
here with the procedural painter, says so in `status`, and reconnects by itself.
"""

from __future__ import annotations

import logging
import threading
import time

from .link import (DEFAULT_NAMESPACE, Cluster, ClusterError, RemoteUserError, Unreachable,
                   WorkerLost, host_port, probe)

log = logging.getLogger("lofid.ray")

__all__ = ["Cluster", "ClusterError", "DEFAULT_NAMESPACE", "RemoteGenerator", "RemoteUserError",
           "Unreachable", "WorkerLost", "generate", "host_port", "job", "probe"]

_clusters: dict = {}
_clusters_lock = threading.Lock()


def job(spec, seed, size, frames, fps, remote: str, options: dict) -> dict:
    """A loop's request as a worker takes it: plain values only."""
    return {"generator": remote, "spec": spec.to_dict(), "seed": int(seed),
            "size": [int(size[0]), int(size[1])], "frames": int(frames), "fps": float(fps),
            "options": dict(options)}


def cluster(address: str, namespace: str = DEFAULT_NAMESPACE, workers: int = 0,
            gpus: float = 1.0) -> Cluster:
    """The connected Cluster of this process for `address` (connected on first use)."""
    with _clusters_lock:
        key = (address, namespace, workers, gpus)
        found = _clusters.get(key)
        if found is None or not found.workers:
            found = Cluster(address, namespace=namespace, workers=workers, gpus=gpus)
            found.connect()
            _clusters[key] = found
        return found


def generate(spec, seed, size, frames, fps, progress=None, *, address: str,
             remote: str = "animatediff", namespace: str = DEFAULT_NAMESPACE, workers: int = 0,
             gpus: float = 1.0, **options):
    """One loop made by a worker of the Ray cluster at `address` with the generator
    `remote` and its `options`; raises what went wrong (no painter stands in). Its
    frames are all decoded: the caller may read them at once (and write them to files)."""
    c = cluster(address, namespace, workers, gpus)
    loop = c.make(job(spec, seed, size, frames, fps, remote, options), progress)
    loop.wait_frame(loop.n_frames - 1, timeout=None)
    return loop


class RemoteGenerator:
    """The daemon's generator on a Ray cluster. Called like any generator; connects in
    the background from start(). While connected, loops are made remotely; while the
    cluster cannot be reached (or its workers cannot work) each loop is painted here
    instead, and the connection is tried again every few seconds (up to a minute
    apart, or at once when a cluster that was silent answers again). `state()` is what
    `status` shows."""

    RETRY_FIRST_S = 2.0
    RETRY_MAX_S = 60.0
    WATCH_EVERY_S = 2.0

    def __init__(self, address: str, remote: str = "animatediff", options: dict | None = None,
                 *, namespace: str = DEFAULT_NAMESPACE, workers: int = 0, gpus: float = 1.0):
        host_port(address)
        self.address = address
        self.remote = remote
        self.options = dict(options or {})
        self.cluster = Cluster(address, namespace=namespace, workers=workers, gpus=gpus)
        self._state = "connecting"
        self._error: str | None = None
        self._since = time.time()
        self.remote_loops = 0
        self.local_loops = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the connection ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._keep_connected, name="ray link",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.cluster.close()

    def state(self) -> dict:
        """{address, state, error, since, workers, remote_loops, local_loops}: state is
        connecting, connected, unreachable or error (reachable, but its workers
        cannot make loops: the message says why)."""
        with self._changed:
            return {"address": self.address, "state": self._state, "error": self._error,
                    "since": self._since,
                    "workers": [dict(name=w.name, host=w.info.get("host"), gpu=w.info.get("gpu"))
                                for w in self.cluster.workers] if self._state == "connected" else [],
                    "remote_loops": self.remote_loops, "local_loops": self.local_loops}

    def _set(self, state: str, error: str | None = None) -> None:
        with self._changed:
            if (state, error) != (self._state, self._error):
                self._state, self._error, self._since = state, error, time.time()
                if state == "connected":
                    log.info("ray cluster %s: connected, %d worker(s)", self.address,
                             len(self.cluster.workers))
                else:
                    log.warning("ray cluster %s: %s%s", self.address, state,
                                f" ({error})" if error else "")
            self._changed.notify_all()

    def lost(self, error: str) -> None:
        """A call found the cluster gone: paint here until it is back."""
        self._set("unreachable", error)
        with self._changed:
            self._changed.notify_all()

    def _keep_connected(self) -> None:
        wait = self.RETRY_FIRST_S
        silent = False          # nothing answered at the last probe
        while not self._stop.is_set():
            if self._state != "connected":
                try:
                    probe(self.address)
                except Unreachable as e:
                    silent = True
                    self._set("unreachable", str(e))
                else:
                    if silent:
                        # Answering again after silence: a cluster starting afresh,
                        # whose first answers may come before it takes clients. The
                        # next tries come soon (2, 4, 8 s...), not after the long wait
                        # the outage grew to.
                        silent, wait = False, self.RETRY_FIRST_S
                    if self._join():
                        wait = self.RETRY_FIRST_S
                        continue
                silent = self._wait_to_retry(wait, silent)
                wait = min(wait * 2, self.RETRY_MAX_S)
                continue
            # Connected: a TCP probe every few seconds notices a cluster gone without
            # waiting for a loop's call to fail.
            with self._changed:
                self._changed.wait(timeout=self.WATCH_EVERY_S)
            if self._stop.is_set() or self._state != "connected":
                continue
            try:
                probe(self.address)
            except Unreachable as e:
                self._set("unreachable", str(e))

    def _join(self) -> bool:
        """Connect to the cluster (it answered); the state says how that went."""
        try:
            self.cluster.connect()
        except Unreachable as e:
            self._set("unreachable", str(e))
        except Exception as e:   # ClusterError: a worker that differs, no GPU
            self._set("error", str(e))
        else:
            self._set("connected")
            return True
        return False

    def _wait_to_retry(self, longest: float, silent: bool) -> bool:
        """Wait `longest` seconds before the next try to connect, or less: a cluster
        that does not answer at all (`silent`: it did not at the last probe) is probed
        every few seconds (a TCP connect costs nothing), and the moment it answers
        again it is tried at once. Only a change from silent to answering cuts the wait
        short, so a cluster that answers but cannot be joined is not tried over and
        over. Returns whether it was silent: at the wait's end, or just before it
        answered again (then the caller starts its schedule afresh)."""
        deadline = time.monotonic() + longest
        while not self._stop.wait(max(0.0, min(self.WATCH_EVERY_S, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            try:
                probe(self.address)
            except Unreachable:
                silent = True
                continue
            if silent:
                break
        return silent

    def wait_connected(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._state != "connecting", timeout) \
                and self._state == "connected"

    # --- the generator -------------------------------------------------------------

    def __call__(self, spec, seed, size, frames, fps, progress=None, **options):
        if self._state == "connected":
            try:
                loop = self.cluster.make(job(spec, seed, size, frames, fps, self.remote,
                                             {**self.options, **options}), progress)
                self.remote_loops += 1
                return loop
            except Unreachable as e:
                self.lost(str(e))
        return self._paint_here(spec, seed, size, frames, fps, progress)

    def _paint_here(self, spec, seed, size, frames, fps, progress):
        from lofid.generators import procedural
        from lofid.generators.painter import MIN_SIZE
        w, h = size
        if min(w, h) < MIN_SIZE:        # the player scales whatever size it gets
            scale = MIN_SIZE / min(w, h)
            w, h = round(w * scale / 2) * 2, round(h * scale / 2) * 2
        loop = procedural.generate(spec, seed, (w, h), frames, fps, progress=progress)
        self.local_loops += 1
        return loop
