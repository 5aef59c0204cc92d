"""This machine's side of a Ray cluster: connect, start (or find) the workers, send a
loop's request to one of them and bring the loop back.

Workers are Ray Core actors, one per GPU, named `lofid-worker-N` in a namespace
(default "lofid") and detached: they outlive the lofid that started them, so the next
`lofid run` or batch finds them with their pipeline still loaded, and several lofids
share them. A worker killed while it makes a loop is restarted by Ray (max_restarts);
the loop is sent once more, to another worker when there is one, and then reported.

Ray keeps one connection per process (ray.init): a Cluster owns it. Before Ray is
asked to connect, the address is tried with a plain TCP connect, so an unreachable
cluster is known in seconds, not after Ray's own minute of retries.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import uuid

from lofid import __version__
from lofid.errors import Failure, UserError

log = logging.getLogger("lofid.ray")

DEFAULT_NAMESPACE = "lofid"
WORKER_PREFIX = "lofid-worker-"
# A Ray Client that loses its server tries again for this long before its calls fail
# (Ray's default is 30 s); lofid has its own reconnecting, and a painter to fall back on.
RECONNECT_GRACE_S = "5"
PROBE_TIMEOUT_S = 3.0
# A connection takes a few seconds (1.1-1.8 s on a quiet 2-core machine, up to 3.4 s
# with the cores oversubscribed twice over). Now and then the Ray Client server hangs
# starting the session of a new client (it forks while its gRPC threads run) and never
# answers it, and ray.init has no time limit of its own: past this, it is given up and
# tried once more at once, as a new client, which the server starts afresh.
CONNECT_TIMEOUT_S = 30.0
PROGRESS_EVERY_S = 0.5


class ClusterError(Failure):
    """The cluster cannot make loops now: unreachable, no GPU, workers that differ."""


class Unreachable(ClusterError):
    pass


class _NeverSetUp(Unreachable):
    """The cluster took the connection and never set up the client's session."""


class WorkerLost(ClusterError):
    """A loop's worker died twice."""


class RemoteUserError(UserError, ValueError):
    """A worker says what was asked cannot be made (a model it does not find)."""


def host_port(address: str) -> tuple[str, int]:
    """(host, port) of "ray://HOST:PORT" (Ray Client, port 10001 by default) or
    "HOST:PORT" (the cluster's GCS, port 6379 by default)."""
    client = address.startswith("ray://")
    rest = address[len("ray://"):] if client else address
    host, colon, port = rest.rpartition(":")
    if not colon:
        host, port = rest, "10001" if client else "6379"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"ray_address {address!r}: expected ray://HOST:PORT (Ray Client, "
                        f"e.g. ray://127.0.0.1:10001) or HOST:PORT of the cluster")
    return host, int(port)


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Unreachable unless something answers TCP at the address."""
    host, port = host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise Unreachable(f"the Ray cluster at {address} cannot be reached: "
                          f"{e.strerror or e}") from None


class Worker:
    """A worker as this side knows it: its actor handle, what it said of itself, and
    how many loops this side has sent it that are not back yet."""

    def __init__(self, name: str, handle, info: dict):
        self.name, self.handle, self.info = name, handle, info
        self.busy = 0


class Cluster:
    """The workers of the Ray cluster at `address`. `workers`: how many (0: one per
    GPU of the cluster, or per `gpus` GPUs); `gpus`: the GPUs each one holds (0: CPU
    workers, for the painter or tests)."""

    _connection_lock = threading.RLock()    # ray.init/shutdown: one at a time per process

    def __init__(self, address: str, *, namespace: str = DEFAULT_NAMESPACE, workers: int = 0,
                 gpus: float = 1.0, start_timeout: float = 180.0,
                 connect_timeout: float = CONNECT_TIMEOUT_S):
        host_port(address)
        self.address = address
        self.namespace = namespace
        self.count = workers
        self.gpus = gpus
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self.workers: list[Worker] = []
        self._lock = threading.Lock()
        self._ids = itertools.count()

    # --- connecting ---------------------------------------------------------------

    def connect(self) -> list[Worker]:
        """Connect, start the workers (or find them started), check each is this lofid.
        ClusterError (Unreachable among them) when it cannot."""
        probe(self.address)
        os.environ.setdefault("RAY_CLIENT_RECONNECT_GRACE_PERIOD", RECONNECT_GRACE_S)
        with self._connection_lock:
            import ray
            self._shutdown(ray)
            try:
                try:
                    self._init(ray)
                except (ConnectionAbortedError, _NeverSetUp):
                    # A Ray Client server now and then fails to start the server of a
                    # new client on its first try, or hangs starting it; the second
                    # goes through.
                    self._shutdown(ray)
                    self._init(ray)
            except (ConnectionError, TimeoutError) as e:
                raise Unreachable(f"the Ray cluster at {self.address} does not answer: "
                                  f"{_first_line(e)}") from None
            except RuntimeError as e:   # another Python or Ray than the cluster's
                raise ClusterError(f"cannot connect to the Ray cluster at {self.address}: "
                                   f"{_first_line(e)}") from None
            workers = self._start_workers(ray)
        with self._lock:
            self.workers = workers
        return workers

    @staticmethod
    def _shutdown(ray) -> None:
        # A Ray Client whose server went away is no longer "initialized" but still
        # holds its context: shut down always, or the next ray.init is refused.
        try:
            ray.shutdown()
        except Exception as e:
            log.debug("ray shutdown: %s", e)

    def _init(self, ray) -> None:
        """ray.init as a Ray Client, given up (Unreachable) after connect_timeout."""
        gave_up = threading.Event()

        def give_up():
            # Disconnecting would wait on the data stream the server never answers;
            # closing the client's gRPC channel (marked as shutting down, so it is not
            # reconnected) cancels that stream, and ray.init then fails at once.
            gave_up.set()
            try:
                from ray.util.client import ray as client
                worker = client.get_context().client_worker
                if worker is not None and worker.channel is not None:
                    worker._in_shutdown = True
                    worker.channel.close()
            except Exception as e:
                log.debug("ray client: giving up the connection: %s", e)

        timer = threading.Timer(self.connect_timeout, give_up)
        timer.daemon = True
        timer.start()
        try:
            ray.init(self.address, namespace=self.namespace, logging_level=logging.WARNING,
                     log_to_driver=False)
        except Exception:
            if not gave_up.is_set():
                raise
        finally:
            timer.cancel()
        if gave_up.is_set():
            raise _NeverSetUp(f"the Ray cluster at {self.address} took the connection but "
                              f"did not set it up within {self.connect_timeout:g} s")

    def _start_workers(self, ray) -> list[Worker]:
        from lofid.generators.cluster.worker import LoopWorker
        try:
            resources = ray.cluster_resources()
        except ConnectionError as e:
            raise Unreachable(f"the Ray cluster at {self.address}: {_first_line(e)}") from None
        count = self.count
        if not count:
            gpus = resources.get("GPU", 0)
            if self.gpus and gpus < self.gpus:
                raise ClusterError(
                    f"the Ray cluster at {self.address} has no GPU: AnimateDiff workers each "
                    f"need {self.gpus:g} (ray_worker_gpus = 0 runs CPU workers, e.g. for the "
                    f"procedural painter)")
            count = int(gpus // self.gpus) if self.gpus else max(1, int(resources.get("CPU", 1)))
        remote = ray.remote(LoopWorker)
        handles = []
        for i in range(count):
            name = f"{WORKER_PREFIX}{i}"
            # Detached and named: found again by the next lofid with its pipeline loaded.
            # Ray restarts one that dies (max_restarts); a loop it was making is sent again
            # by make() below, not by Ray (max_task_retries 0), so it goes elsewhere.
            handles.append((name, remote.options(
                name=name, namespace=self.namespace, lifetime="detached", get_if_exists=True,
                num_gpus=self.gpus, num_cpus=1, max_restarts=-1, max_task_retries=0,
                max_concurrency=4).remote(name, self.gpus)))
        try:
            infos = ray.get([h.hello.remote() for _, h in handles], timeout=self.start_timeout)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"the workers on {self.address} did not start within {self.start_timeout:g} s: "
                f"are the cluster's GPUs taken by other work?") from None
        except ConnectionError as e:
            raise Unreachable(f"the Ray cluster at {self.address}: {_first_line(e)}") from None
        except ray.exceptions.RayError as e:
            raise ClusterError(f"a worker on {self.address} cannot start: "
                               f"{_first_line(e)}") from None
        for (name, _), info in zip(handles, infos):
            if info["lofid"] != __version__:
                raise ClusterError(
                    f"worker {name} on {info['host']} runs lofid {info['lofid']}, this is "
                    f"lofid {__version__}: install lofid {__version__} where the workers run, "
                    f"then restart Ray there (ray stop; ray start ...) so they start anew")
            if self.gpus and info["gpu"] is None:
                raise ClusterError(f"worker {name} on {info['host']} has no usable CUDA GPU "
                                   f"(torch sees none)")
        return [Worker(name, handle, info) for (name, handle), info in zip(handles, infos)]

    def close(self) -> None:
        """Disconnect this process (the workers stay, detached, for the next one)."""
        with self._connection_lock:
            import ray
            if ray.is_initialized():
                try:
                    ray.shutdown()
                except Exception as e:   # a connection already gone
                    log.debug("ray shutdown: %s", e)
        with self._lock:
            self.workers = []

    # --- making loops ----------------------------------------------------------------

    def make(self, job: dict, progress=None):
        """The Loop `job` asks for (generator, spec, seed, size, frames, fps, options),
        made by the least busy worker. A worker that dies while it makes it: sent once
        more, to another worker when there is one, then WorkerLost. Unreachable when the
        connection is lost; RemoteUserError when what was asked cannot be made."""
        import ray
        job = dict(job, id=job.get("id") or uuid.uuid4().hex)
        tried: list[str] = []
        for attempt in (1, 2):
            worker = self._pick(avoid=tried)
            try:
                answer = self._run_on(ray, worker, job, progress)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                tried.append(worker.name)
                log.warning("worker %s died making a loop (attempt %d): %s", worker.name,
                            attempt, _first_line(e))
                continue
            except ConnectionError as e:
                raise Unreachable(f"the Ray cluster at {self.address} was lost: "
                                  f"{_first_line(e)}") from None
            return _loop_of(answer, worker)
        raise WorkerLost(f"a loop was lost twice: worker{'s' if len(set(tried)) > 1 else ''} "
                         f"{' and '.join(dict.fromkeys(tried))} died while making it")

    def _pick(self, avoid: list[str]) -> Worker:
        with self._lock:
            if not self.workers:
                raise Unreachable(f"not connected to the Ray cluster at {self.address}")
            fresh = [w for w in self.workers if w.name not in avoid] or self.workers
            worker = min(fresh, key=lambda w: w.busy)
            worker.busy += 1
            return worker

    def _run_on(self, ray, worker: Worker, job: dict, progress) -> dict:
        try:
            ref = worker.handle.make.remote(job)
            last = None
            next_poll = time.monotonic() + PROGRESS_EVERY_S
            while True:
                ready, _ = ray.wait([ref], timeout=0.05 if last is None else 0.2)
                if ready:
                    answer = ray.get(ref)
                    if progress is not None and last is not None and last[0] < last[1]:
                        progress(last[1], last[1])
                    return answer
                if progress is not None and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + PROGRESS_EVERY_S
                    try:
                        now = ray.get(worker.handle.progress.remote(job["id"]), timeout=10)
                    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                        now = None      # the loop's own answer says what happened
                    if now is not None and now != last:
                        last = now
                        progress(*now)
        finally:
            with self._lock:
                worker.busy -= 1

    def pids(self) -> dict[str, int]:
        """Each worker's process id (where a loop is made)."""
        import ray
        return {w.name: ray.get(w.handle.pid.remote(), timeout=60) for w in self.workers}

    def verify(self, targets: list[str], kind: str | None) -> list[dict]:
        """`lofid models verify` on every worker."""
        import ray
        return ray.get([w.handle.verify.remote(targets, kind) for w in self.workers],
                       timeout=self.start_timeout)


def _loop_of(answer: dict, worker: Worker):
    """The Loop of a worker's answer. Its frames stay as they came, in the library's
    format: the library stores those bytes as they are, and they decode in the
    background when the loop is played (lofid.library.loop_from_stored), so a loop
    is ready to store and to play as soon as it is here. Bytes that do not match the
    count and SHA-256 the worker sent are a ClusterError: never stored, never played."""
    from lofid.library import StoredFrames, loop_from_stored
    where = f"worker {worker.name} on {worker.info.get('host', '?')}"
    if "error" in answer:
        if answer.get("user"):
            raise RemoteUserError(f"{where}: {answer['error']}")
        raise ClusterError(f"{where}: {answer['error']}")
    try:
        loop = loop_from_stored(answer["meta"], StoredFrames(answer["frames"], answer["bytes"],
                                                             answer["sha256"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ClusterError(f"{where}: its loop came back damaged: {e}") from None
    loop.made_by = {"worker": answer["worker"], "host": worker.info.get("host"),
                    "seconds": answer["seconds"]}
    return loop


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0] if text.splitlines() else text
