"""The lofid process on a GPU of a Ray cluster: one actor per GPU that loads the
pipeline once (the model cache of local generation, lofid.generators.animatediff) and
keeps it between loops.

Nothing here imports ray: the link (link.py) wraps LoopWorker in ray.remote when it
starts workers, so this module is also what a worker process imports by name, and
its answers are plain dicts, numbers and bytes. A loop comes back as its frames file
in the library's own format (lossless H.264, lofid.library.encode_frames): about 20
times smaller than the raw frames through the Ray Client's link, and the library at
the other end stores it as it is.
"""

from __future__ import annotations

import os
import platform
import socket
import threading
import time

from lofid import __version__
from lofid.errors import UserError

# What a worker can run: the backends of lofid.generators that make loops.
REMOTE_GENERATORS = ("animatediff", "procedural")


class LoopWorker:
    """One worker. `gpus` is what it was given by Ray (0: a CPU worker, for the
    painter or tests; >0: it must see a CUDA GPU before it takes AnimateDiff work)."""

    def __init__(self, name: str, gpus: float):
        self.name = name
        self.gpus = gpus
        self._progress: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.loops = 0

    def hello(self) -> dict:
        """Who this worker is: its lofid, Python and Ray, where it runs, its GPU."""
        import ray
        return {"name": self.name, "lofid": __version__, "python": platform.python_version(),
                "ray": ray.__version__, "host": socket.gethostname(), "pid": os.getpid(),
                "gpus": self.gpus, "gpu": self._gpu_name() if self.gpus else None,
                "loops": self.loops}

    def _gpu_name(self) -> str | None:
        try:
            import torch
            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        except Exception:   # no torch, a broken driver: no GPU, said below
            pass
        return None

    def progress(self, job_id: str) -> tuple[int, int] | None:
        """(done, total) of the job `job_id` while it runs (answered while make() works:
        the actor takes more than one call at a time)."""
        with self._lock:
            return self._progress.get(job_id)

    def make(self, job: dict) -> dict:
        """One loop. `job`: id, generator, spec (a SceneSpec's dict), seed, size,
        frames, fps, options. The answer is {"meta", "frames" (the frames file's bytes),
        "bytes", "sha256" (of those bytes), "seconds", "worker"} or, when the loop cannot
        be made here, {"error", "user"}: user is True when what was asked for is wrong
        (a model not found, a size it cannot make)."""
        from lofid import generators
        from lofid.library import encode_frames
        from lofid.scene import SceneSpec

        job_id = job["id"]
        name = job["generator"]
        try:
            if name not in REMOTE_GENERATORS:
                return {"error": f"a worker makes loops with {' or '.join(REMOTE_GENERATORS)}, "
                                 f"not {name!r}", "user": True}
            if name == "animatediff" and self.gpus and self._gpu_name() is None:
                return {"error": f"worker {self.name} on {socket.gethostname()} has no "
                                 f"usable CUDA GPU (torch sees none)", "user": False}
            spec = SceneSpec.from_dict(job["spec"])

            def progress(done, total):
                with self._lock:
                    self._progress[job_id] = (int(done), int(total))

            t0 = time.monotonic()
            loop = generators.get(name)(spec, job["seed"], tuple(job["size"]), job["frames"],
                                        job["fps"], progress=progress, **job.get("options", {}))
            stored = encode_frames(loop)
            self.loops += 1
            return {"meta": loop.metadata(), "frames": stored.data, "bytes": stored.size,
                    "sha256": stored.sha256, "seconds": time.monotonic() - t0,
                    "worker": self.name}
        except UserError as e:      # what was asked cannot be made: a model, a size
            return {"error": f"{e}", "user": True}
        except Exception as e:      # the machine: out of memory, a broken file
            return {"error": f"{type(e).__name__}: {e}", "user": False}
        finally:
            with self._lock:
                self._progress.pop(job_id, None)

    def verify(self, targets: list[str], kind: str | None) -> dict:
        """`lofid models verify` run here (the weights the workers load): rows of
        (ok, text) and the host."""
        from lofid import models as M
        rows = []
        refs = []
        for t in targets:
            for k in ([kind] if kind else M.KINDS):
                try:
                    refs.append(M.find(k, t))
                    break
                except M.ModelError as e:
                    error = e
            else:
                rows.append((False, f"{t}: {error}"))
        if not targets:
            refs = M.list_models()
            if not refs:
                where = ", ".join(str(p) for p in M.search_paths()) or "no existing folders"
                rows.append((False, f"no models found (searched: {where})"))
        for ref in refs:
            problems = M.verify(ref)
            rows.append((not problems, f"{ref.kind} {ref.name} ({ref.format}) {ref.path}"
                         + "".join(f"\n      {p}" for p in problems)))
        return {"rows": rows, "host": socket.gethostname(), "name": self.name}

    def pid(self) -> int:
        return os.getpid()
