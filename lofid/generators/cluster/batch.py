"""Filling a library with many loops: `lofid generate --batch` and `lofid library fill`.

Each prompt of a file is made `count` times, each time with a seed taken from the
prompt and its number, so the same batch run again asks for the same loops: those
the library already holds (the same scene, seed and generator) are skipped, and an
interrupted batch resumes where it stopped without making any loop twice. Loops are
made by as many makers at once as there are (the workers of a Ray cluster, or one
generator here) and written into the library as each arrives.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable

from lofid.errors import UserError

log = logging.getLogger("lofid.batch")


@dataclass(frozen=True)
class Wanted:
    prompt: str
    number: int
    spec: object
    seed: int


def read_prompts(path: str) -> list[str]:
    """The prompts of a file, one a line; blank lines and # comments left out."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as e:
        raise UserError(f"--batch {path!r} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UserError(f"--batch {path!r} is not UTF-8 text: one prompt a line") from None
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise UserError(f"--batch {path!r} holds no prompt: one prompt a line")
    return prompts


def seed_of(prompt: str, number: int) -> int:
    """The seed of the `number`th loop of `prompt`: the same in every run."""
    digest = hashlib.sha256(f"{prompt}\n{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def wanted(prompts: list[str], count: int) -> list[Wanted]:
    from lofid.scene import parse
    return [Wanted(p, n, parse(p), seed_of(p, n)) for n in range(count) for p in prompts]


def already_made(library, todo: list[Wanted], generator: str) -> set[Wanted]:
    """The wanted loops the library holds: the same spec, seed and generator."""
    have = {(e["spec_id"], e["seed"]) for e in library.entries() if e["generator"] == generator}
    return {w for w in todo if (str(w.spec.id), w.seed) in have}


def fill(library, todo: list[Wanted], make: Callable, makers: int, generator: str,
         on_loop: Callable | None = None, on_progress: Callable | None = None) -> dict:
    """Make every wanted loop the library lacks with `make(spec, seed)` -> Loop, with
    `makers` calls at once, putting each into the library as it comes. `on_loop(wanted,
    key, loop)` hears of each; `on_progress(done, total)` of the count. A loop that
    fails is reported and the others go on. Returns {made, skipped, failed, errors}."""
    done_before = already_made(library, todo, generator)
    left = [w for w in todo if w not in done_before]
    jobs: queue.Queue = queue.Queue()
    for w in left:
        jobs.put(w)
    result = {"made": 0, "skipped": len(done_before), "failed": 0, "errors": []}
    lock = threading.Lock()
    stop = threading.Event()
    total = len(left)
    if on_progress is not None:
        on_progress(0, total)

    def work():
        while not stop.is_set():
            try:
                w = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                loop = make(w.spec, w.seed)
                key = library.put(loop)
            except Exception as e:  # one loop's failure is reported; the others go on
                with lock:
                    result["failed"] += 1
                    result["errors"].append(f"{w.prompt!r} #{w.number}: {e}")
                if isinstance(e, UserError):      # every loop would fail the same way
                    stop.set()
            else:
                with lock:
                    result["made"] += 1
                if on_loop is not None:
                    on_loop(w, key, loop)
            with lock:
                count = result["made"] + result["failed"]
            if on_progress is not None:
                on_progress(count, total)

    threads = [threading.Thread(target=work, name=f"batch {i}", daemon=True)
               for i in range(max(1, min(makers, total or 1)))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()       # loops in the library stay; the rest are made by the next run
        raise
    return result

