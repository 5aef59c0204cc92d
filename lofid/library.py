"""The library: loops on disk, content-addressed, atomic, size-capped, indexed.

Each loop is stored once, under a key derived from everything that made it (its
spec, seed, generator and params), as two files in the library folder:

    <key>.mkv    the frames, lossless: H.264 in its RGB lossless mode (libx264rgb,
                 qp 0) in Matroska. Bit-exact; on painted 1280x720 loops a third of
                 the size of zlib-compressed raw frames (np.savez_compressed), smaller
                 than FFV1, and five to seven times cheaper to decode than FFV1
                 (bench/RESULTS.md, "Library storage").
    <key>.json   the metadata (Loop.metadata() plus key, bytes, last_played and the
                 frames file's size and SHA-256), readable without touching the frames.

Every file is written to a temporary file in the same folder, fsynced and renamed
into place, and the folder is fsynced after each rename. Frames are renamed first and
metadata last, so a loop exists exactly when its metadata file does: a writer killed
at any point leaves at most a temporary file (deleted) or frames without metadata
(moved aside) for the next Library that opens the folder to find. Renames and deletions happen under an
flock on `.lock` in the folder, so two Library objects (in one process or several)
never see each other's half-finished work; temporary files are flocked by their
writer while it lives, so start-up cleaning removes only those of dead writers.

Anything found broken at start (truncated frames, unreadable metadata, metadata
without frames, frames without metadata) is moved into `corrupt/` with a warning.
Metadata is checked by one set of rules (_check_meta) before it is written and each
time it is read, so metadata damaged later (a frame rate of 0, a frame count no memory
holds, a folder under its name) is moved aside when it is next read, and the rest of
the library goes on.

A loop that comes with its frames already in this format (`Loop.stored`, a
StoredFrames: a loop made on a Ray worker) is written as it is, after its bytes are
checked against their size and SHA-256; encode_frames() and loop_from_stored() are
the two ends of that path.

Frames files are decoded only by get(), open() and standby(); one that fails
its checksum or does not decode is moved aside there too, and they raise
CorruptLoopError (a KeyError). open() hands the loop over before its frames are all
decoded (a scene asked for by hand starts at once) and checks the file after.

The library imports the ground floor (scene, loop) and never a generator.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lofid import paths
from lofid.durable import fsync_dir
from lofid.errors import Failure
from lofid.loop import Loop, check_metrics
from lofid.scene import SCENES, SceneSpec

log = logging.getLogger(__name__)

KEY_LENGTH = 16                      # hex characters: 64 bits, collisions are not a concern
FRAMES_SUFFIX = ".mkv"
META_SUFFIX = ".json"
CORRUPT_DIR = "corrupt"
FRAMES_FORMAT = "h264-rgb-lossless"
FORMAT_VERSION = 1

_KEY_RE = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")
_TMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"
# Lossless H.264 on RGB planes: exact, compact on painted frames (still areas cost
# next to nothing in P-frames) and quick to decode, which the player needs when it
# loads the next loop. "ultrafast" keeps encoding near a second per 720p loop.
_CODEC = "libx264rgb"
_CODEC_OPTIONS = {"qp": "0", "preset": "ultrafast"}
_PIX_FMT = "rgb24"


class LibraryError(Failure):
    """Something in the library folder is not as it should be."""


class CorruptLoopError(LibraryError, KeyError):
    """A stored loop could not be read back; it has been moved into corrupt/.

    It is a KeyError too, so a caller that treats a missing loop as "generate it
    again" does the same for a damaged one."""

    def __str__(self) -> str:        # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def default_root() -> Path:
    """$LOFID_LIBRARY, else $XDG_DATA_HOME/lofid/loops, else ~/.local/share/lofid/loops."""
    return paths.library_dir()


class Library:
    """Loops on disk under `root`, capped at `max_bytes` of frames (None: no cap):
    put() evicts the least recently played past it, never a loop in use (those
    keep_in_use() names, and those open() is decoding)."""

    def __init__(self, root: str | os.PathLike | None = None,
                 max_bytes: int | None = None) -> None:
        self.max_bytes = _check_max_bytes(max_bytes)
        self.root = Path(root).expanduser() if root is not None else default_root()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder {self.root}: {exc}") from exc
        if not self.root.is_dir():
            raise LibraryError(f"library root {self.root} is not a folder")
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = None
        self._in_use: Callable[[], Iterable[str]] | None = None
        self._loading: list[str] = []   # keys whose frames open() is decoding now
        self._check_folder()

    def __repr__(self) -> str:
        return f"Library({str(self.root)!r}, max_bytes={self.max_bytes!r})"

    def keep_in_use(self, keys: Callable[[], Iterable[str]] | None) -> None:
        """Never evict the loops whose keys `keys()` returns when asked (the player's:
        playing, queued, on standby): their frames may still be read from disk. It is
        called with the library's lock held, so it must not use the library."""
        if keys is not None and not callable(keys):
            raise ValueError(f"keep_in_use needs a callable returning keys, got {keys!r}")
        self._in_use = keys

    # ------------------------------------------------------------------ keys

    @staticmethod
    def key_for(spec: Any, seed: int, generator: str, params: Mapping | None) -> str:
        """A stable hex key from everything that made a loop.

        The same inputs give the same key in every process and on every machine;
        changing anything (any spec field, the seed, the generator, any param) changes
        it. Tuples and lists are the same, and so are 12 and 12.0."""
        if isinstance(spec, Mapping):
            spec_dict = dict(spec)
        elif callable(getattr(spec, "to_dict", None)):
            spec_dict = spec.to_dict()
        else:
            raise ValueError("key_for spec must be a scene spec (with .to_dict()) or its "
                             f"dict, got {type(spec).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"key_for seed must be an integer, got {seed!r}")
        if not isinstance(generator, str) or not generator:
            raise ValueError(f"key_for generator must be a non-empty name, got {generator!r}")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ValueError(f"key_for params must be a dict, got {type(params).__name__}")
        made_of = {
            "spec": _canonical(spec_dict, "spec"),
            "seed": int(seed),
            "generator": generator,
            "params": _canonical(dict(params), "params"),
        }
        text = json.dumps(made_of, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]

    # ------------------------------------------------------------------ storing

    def put(self, loop: Loop) -> str:
        """Store `loop` (once: a key already stored is left as it is) and return its
        key; then evict least recently played loops past max_bytes, never this one
        nor those in use (see keep_in_use)."""
        if not isinstance(loop, Loop):
            raise ValueError(f"Library.put needs a Loop, got {type(loop).__name__}")
        key = self.key_for(loop.spec, loop.seed, loop.generator, loop.params)
        if key not in self:
            self._store(key, loop)
        if self.max_bytes is not None:
            self._evict(self.max_bytes, keep=key)
        return key

    def _store(self, key: str, loop: Loop) -> None:
        frames_path = self._frames_path(key)
        # Frames that came encoded (from a Ray worker) are written as they are: encoding
        # them again would cost as much as it did there, for the same bytes' worth.
        stored = loop.stored if loop.stored is not None else encode_frames(loop)
        with self._temp_file(key, FRAMES_SUFFIX) as frames_tmp:
            with open(frames_tmp, "wb") as fh:
                fh.write(stored.data)
                fh.flush()
                os.fsync(fh.fileno())
            size, digest = _file_digest(frames_tmp)
            if (size, digest) != (stored.size, stored.sha256):
                # What is on disk is not what the frames' maker said it made.
                raise LibraryError(f"loop {key} cannot be stored: its frames file has {size} "
                                   f"bytes with SHA-256 {digest[:16]}..., its frames say "
                                   f"{stored.size} bytes with {stored.sha256[:16]}...")
            doc = loop.metadata()
            doc.update({
                "key": key,
                "bytes": size,
                "last_played": None,
                "storage": {"file": frames_path.name, "format": FRAMES_FORMAT,
                            "version": FORMAT_VERSION, "bytes": size, "sha256": digest},
            })
            try:
                _check_meta(doc, key)    # never write what reading would refuse
            except ValueError as exc:
                raise LibraryError(f"loop {key} cannot be stored: {exc}") from None
            with self._temp_file(key, META_SUFFIX) as meta_tmp:
                _write_json(meta_tmp, doc)
                with self._locked():
                    if self._meta_path(key).exists():
                        return      # stored meanwhile by another Library: keep that one
                    os.replace(frames_tmp, frames_path)
                    fsync_dir(self.root)
                    os.replace(meta_tmp, self._meta_path(key))
                    fsync_dir(self.root)
        log.debug("stored loop %s (%d bytes)", key, size)

    # ------------------------------------------------------------------ reading

    def get(self, key: str) -> Loop:
        """The loop stored under `key`, frames decoded bit-exact.

        KeyError if there is none; CorruptLoopError (a KeyError) if its frames are
        damaged, after moving them aside."""
        doc = self.meta(key)
        storage = doc["storage"]
        try:
            data = self._frames_path(key).read_bytes()
        except FileNotFoundError:
            if key not in self:
                raise KeyError(f"no loop {key} in {self.root} (removed meanwhile)") from None
            self._quarantine_entry(key, doc, "its frames file is missing")
            raise CorruptLoopError(f"loop {key} in {self.root} has lost its frames "
                                   f"file; its metadata was moved into {CORRUPT_DIR}/") from None
        problem = None
        if len(data) != storage["bytes"]:
            problem = f"its frames file has {len(data)} bytes, expected {storage['bytes']}"
        elif hashlib.sha256(data).hexdigest() != storage["sha256"]:
            problem = "its frames file does not match its checksum"
        else:
            try:
                frames = _decode_frames(data, doc)
            except MemoryError:
                raise                    # the machine's trouble, not the file's
            except Exception as exc:     # any codec or shape failure means the same
                problem = f"its frames do not decode ({type(exc).__name__}: {exc})"
        if problem is not None:
            self._quarantine_entry(key, doc, problem)
            raise CorruptLoopError(f"loop {key} in {self.root} is damaged: {problem}; "
                                   f"moved into {CORRUPT_DIR}/")
        spec = SceneSpec.from_dict(doc["spec"])
        return Loop.from_metadata(doc, frames, spec, key=key)

    def open(self, key: str, standby: "Standby | None" = None) -> Loop:
        """The loop stored under `key`, to play at once: its frames are decoded in a
        background thread, in order, into the loop's own array, and
        `loop.wait_frame(i)` blocks until frame i is there (raising CorruptLoopError
        if the frames turn out damaged; they are then moved aside as get() does).

        A `standby` of the loop (from standby()) makes its first frames readable at
        once, and its array becomes the loop's (a standby is used once): opening a
        frames file and decoding its first picture takes a tenth of a second or more,
        which a scene change asked for by hand should not wait. KeyError if there is
        no such loop."""
        doc = self.meta(key)
        n, height, width = doc["n_frames"], doc["height"], doc["width"]
        known = 0
        if standby is None:
            frames = np.empty((n, height, width, 3), dtype=np.uint8)
        elif not isinstance(standby, Standby) or standby.key != key \
                or standby.frames.shape != (n, height, width, 3):
            raise ValueError(f"open standby must be a Standby of loop {key} from "
                             f"standby({key!r}), got {standby!r}")
        else:
            frames, known = standby.frames, standby.count
        loop = Loop.from_metadata(doc, frames, SceneSpec.from_dict(doc["spec"]), key=key)
        loader = loop.loader = _FileLoader(self, key, doc, frames, known)
        with self._thread_lock:
            self._loading.append(key)    # never evicted while its frames are read
        loader.start()
        return loop

    def standby(self, key: str, count: int) -> "Standby":
        """The loop stored under `key` with its first `count` frames (fewer if it is
        shorter) decoded now, for open() to start it at once. The array has room for
        every frame, but memory is taken only by those decoded (the rest is never
        touched until open() decodes them). KeyError if absent; CorruptLoopError if
        they do not decode."""
        doc = self.meta(key)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"standby count must be a whole number >= 1, got {count!r}")
        count = min(count, doc["n_frames"])
        frames = np.empty((doc["n_frames"], doc["height"], doc["width"], 3), dtype=np.uint8)
        try:
            for index, image in _decoded_frames(self._frames_path(key), doc):
                if index >= count:
                    break
                frames[index] = image
        except FileNotFoundError:
            raise KeyError(f"no loop {key} in {self.root} (removed meanwhile)") from None
        except MemoryError:
            raise
        except Exception as exc:
            problem = f"its frames do not decode ({type(exc).__name__}: {exc})"
            self._quarantine_entry(key, doc, problem)
            raise CorruptLoopError(f"loop {key} in {self.root} is damaged: {problem}; "
                                   f"moved into {CORRUPT_DIR}/") from None
        return Standby(key=key, frames=frames, count=count)

    def meta(self, key: str) -> dict:
        """The loop's metadata without loading its frames: Loop.metadata() plus "key",
        "bytes" (size of its frames file), "last_played" (unix time or None) and
        "storage" (how the frames are kept). KeyError if absent."""
        self._check_key(key)
        doc = self._read_meta(key)
        if doc is None:
            raise KeyError(f"no loop {key} in {self.root}")
        return doc

    def entries(self, scene: str | None = None, spec: Any = None) -> list[dict]:
        """Metadata of the stored loops, newest first; only those of `scene` (a scene
        name) and/or equal to `spec` (a SceneSpec) when given."""
        if scene is not None and scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}: expected one of {', '.join(SCENES)}")
        wanted_spec = None
        if spec is not None:
            if not callable(getattr(spec, "to_dict", None)):
                raise ValueError("entries spec must be a scene spec (with .to_dict()), "
                                 f"got {type(spec).__name__}")
            wanted_spec = _canonical(spec.to_dict(), "spec")
        found = []
        for key in self._keys():
            doc = self._read_meta(key)
            if doc is None:
                continue                  # removed between listing and reading
            if scene is not None and doc["spec"].get("scene") != scene:
                continue
            if wanted_spec is not None and _canonical(doc["spec"], "spec") != wanted_spec:
                continue
            found.append(doc)
        found.sort(key=lambda d: (d["created"], d["key"]), reverse=True)
        return found

    def __contains__(self, key: object) -> bool:
        return (isinstance(key, str) and _KEY_RE.match(key) is not None
                and self._meta_path(key).exists())

    def __len__(self) -> int:
        return len(self._keys())

    def total_bytes(self) -> int:
        """Bytes of frames stored (the metadata files, about 1 KiB each, are not counted)."""
        total = 0
        for key in self._keys():
            doc = self._read_meta(key)
            if doc is not None:
                total += doc["bytes"]
        return total

    # ------------------------------------------------------------------ playing, removing

    def mark_played(self, key: str, when: float | None = None) -> None:
        """Record that the loop was just played (or at unix time `when`); persistent."""
        self._check_key(key)
        if when is None:
            when = time.time()
        elif (isinstance(when, bool) or not isinstance(when, (int, float))
              or not math.isfinite(when)):
            raise ValueError(f"mark_played when must be a unix time, got {when!r}")
        with self._temp_file(key, META_SUFFIX) as meta_tmp:
            # Under the lock, so a loop removed meanwhile is not brought back half.
            with self._locked():
                doc = self._read_meta(key)
                if doc is None:
                    raise KeyError(f"no loop {key} in {self.root}")
                doc["last_played"] = float(when)
                _write_json(meta_tmp, doc)
                os.replace(meta_tmp, self._meta_path(key))
                fsync_dir(self.root)

    def remove(self, key: str) -> None:
        """Delete the loop stored under `key`; KeyError if there is none."""
        self._check_key(key)
        with self._locked():
            if not self._meta_path(key).exists():
                raise KeyError(f"no loop {key} in {self.root}")
            self._delete(key)

    def prune(self, max_bytes: int | None = None) -> list[str]:
        """Evict least recently played loops (never played: oldest created first) until
        the frames total at most `max_bytes` (default: the library's max_bytes; with
        neither, nothing is evicted), sparing those in use (see keep_in_use). Returns
        the removed keys, in eviction order."""
        cap = _check_max_bytes(max_bytes)
        if cap is None:
            cap = self.max_bytes
        if cap is None:
            return []
        return self._evict(cap, keep=None)

    def _evict(self, cap: int, keep: str | None) -> list[str]:
        removed = []
        with self._locked():
            docs = [d for d in (self._read_meta(k) for k in self._keys()) if d is not None]
            total = sum(d["bytes"] for d in docs)
            docs.sort(key=_eviction_order)
            kept = {keep, *self._loading}
            if self._in_use is not None and total > cap:
                kept.update(self._in_use())
            for doc in docs:
                if total <= cap:
                    break
                if doc["key"] in kept:
                    continue
                self._delete(doc["key"])
                total -= doc["bytes"]
                removed.append(doc["key"])
                log.info("evicted loop %s (%d bytes) to keep the library under %d bytes",
                         doc["key"], doc["bytes"], cap)
        return removed

    def _delete(self, key: str) -> None:
        # Metadata first: once it is gone the loop no longer exists for anyone, and
        # frames left behind by a crash here are cleared at the next start.
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(key).unlink()
        fsync_dir(self.root)
        with contextlib.suppress(FileNotFoundError):
            self._frames_path(key).unlink()

    # ------------------------------------------------------------------ start-up check

    def _check_folder(self) -> None:
        """Clear dead writers' temporary files and move broken entries aside."""
        with self._locked():
            metas, frames = set(), set()
            for entry in os.scandir(self.root):
                name = entry.name
                if name.startswith(_TMP_PREFIX):
                    self._clear_temp(Path(entry.path))
                    continue
                stem, suffix = os.path.splitext(name)
                if not _KEY_RE.match(stem):
                    continue           # not ours (the lock file, corrupt/, a user's note)
                if suffix == META_SUFFIX:
                    metas.add(stem)    # whatever it is: _read_meta moves aside a non-file
                elif suffix == FRAMES_SUFFIX and entry.is_file(follow_symlinks=False):
                    frames.add(stem)
            listed = set()
            for key in sorted(metas):
                doc = self._read_meta(key)
                if doc is None:
                    continue
                listed.add(key)
                frames_path = self._frames_path(key)
                if key not in frames:
                    self._quarantine_entry(key, doc, "metadata without a frames file")
                    continue
                size = frames_path.stat().st_size
                if size != doc["storage"]["bytes"]:
                    self._quarantine_entry(key, doc, f"frames file has {size} bytes, "
                                           f"expected {doc['storage']['bytes']} (truncated?)")
            for key in sorted(frames - listed):
                self._move_aside(self._frames_path(key), "frames file without metadata")

    def _clear_temp(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            # A live writer holds its temporary file locked; only dead ones' are cleared.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return
            raise
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                log.info("removed leftover temporary file %s (an interrupted write)", path)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ helpers

    def _check_key(self, key: Any) -> None:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise KeyError(f"no loop {key!r} in {self.root}: a loop key is "
                           f"{KEY_LENGTH} lower-case hex characters")

    def _keys(self) -> list[str]:
        keys = []
        for name in os.listdir(self.root):
            stem, suffix = os.path.splitext(name)
            if suffix == META_SUFFIX and _KEY_RE.match(stem):
                keys.append(stem)
        return keys

    def _meta_path(self, key: str) -> Path:
        return self.root / f"{key}{META_SUFFIX}"

    def _frames_path(self, key: str) -> Path:
        return self.root / f"{key}{FRAMES_SUFFIX}"

    def _read_meta(self, key: str) -> dict | None:
        """The parsed metadata of `key`; None if it is absent, or unreadable (then the
        loop's files are moved aside: metadata is only ever written whole, so what
        cannot be read was damaged from outside and will not heal).

        Read afresh every time: another Library may have changed it, and file times
        are too coarse to tell a rewrite within the same few milliseconds."""
        path = self._meta_path(key)
        raw = None                   # stays None for a folder or FIFO under that name
        try:
            raw = _meta_bytes(path)
            return _parse_meta(raw, key)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            with self._locked():
                try:
                    again = _meta_bytes(path)
                except FileNotFoundError:
                    return None
                except ValueError:
                    again = None
                if again == raw:     # not replaced meanwhile
                    why = f"unusable metadata ({exc})"
                    self._move_aside(path, why)
                    self._move_aside(self._frames_path(key), why)
            return None

    def _quarantine_entry(self, key: str, doc: dict, why: str) -> None:
        """Move a broken loop's files aside, unless it was replaced meanwhile."""
        with self._locked():
            current = self._read_meta(key)
            if current is not None and current["storage"]["sha256"] != doc["storage"]["sha256"]:
                return
            self._move_aside(self._meta_path(key), why)
            self._move_aside(self._frames_path(key), why)

    def _move_aside(self, path: Path, why: str) -> None:
        if not path.exists():
            return
        corrupt = self.root / CORRUPT_DIR
        corrupt.mkdir(exist_ok=True)
        target = corrupt / path.name
        n = 1
        while target.exists():
            target = corrupt / f"{path.name}.{n}"
            n += 1
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return
        fsync_dir(self.root)
        log.warning("moved %s aside to %s: %s", path, target, why)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder's lock: excludes other Library objects, in this process or
        another, and other threads using this one. Re-entrant within a thread."""
        with self._thread_lock:
            if self._lock_fd is not None:
                yield
                return
            # Each Library opens its own file: flock excludes other open files, even
            # those of the same process.
            fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._lock_fd = fd
                yield
            finally:
                self._lock_fd = None
                os.close(fd)

    @contextlib.contextmanager
    def _temp_file(self, key: str, suffix: str) -> Iterator[Path]:
        """A new temporary file in the library folder, locked while its writer lives
        and deleted on the way out unless it was renamed into place."""
        path = self.root / f"{_TMP_PREFIX}{key}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        # Created and locked under the folder lock, so start-up cleaning (which holds
        # it) never sees the file in the instant before its writer locks it.
        with self._locked():
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(fd)


# ---------------------------------------------------------------------- frames files

@dataclass(frozen=True, repr=False)
class StoredFrames:
    """A loop's frames in the library's own format (a frames file's bytes), with the
    byte count and SHA-256 its maker computed: what a Ray worker sends back, and what
    Library.put writes as it is."""
    data: bytes
    size: int
    sha256: str

    def __repr__(self) -> str:
        return f"StoredFrames({self.size} bytes, sha256 {self.sha256[:16]}...)"

    def check(self) -> None:
        """ValueError unless the bytes are those the maker counted and hashed."""
        if not isinstance(self.data, bytes):
            raise ValueError(f"the frames are {type(self.data).__name__}, not bytes")
        if len(self.data) != self.size:
            raise ValueError(f"the frames are {len(self.data)} bytes, their maker "
                             f"said {self.size}")
        digest = hashlib.sha256(self.data).hexdigest()
        if digest != self.sha256:
            raise ValueError(f"the frames' SHA-256 is {digest[:16]}..., their maker "
                             f"said {str(self.sha256)[:16]}...")


def encode_frames(loop: Loop) -> StoredFrames:
    """`loop`'s frames in the library's format: what put() writes, or a Ray worker
    sends back for the library at the other end to write as it is."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="matroska") as container:
        # The container's timing is informative only; the metadata holds the exact fps.
        stream = container.add_stream(_CODEC, rate=loop.rate,
                                      options=dict(_CODEC_OPTIONS))
        stream.width = loop.width
        stream.height = loop.height
        stream.pix_fmt = _PIX_FMT
        for index, frame in enumerate(loop.frames):
            vf = av.VideoFrame.from_ndarray(frame, format=_PIX_FMT)
            vf.pts = index
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = out.getvalue()
    return StoredFrames(data, len(data), hashlib.sha256(data).hexdigest())


def loop_from_stored(meta: dict, stored: StoredFrames) -> Loop:
    """The Loop of `meta` (Loop.metadata()) whose frames are `stored`, to store and to
    play: put() writes the bytes as they are, and the frames decode from them in a
    thread of their own, started by the first wait_frame() (the player waits for each
    frame it shows, as for a loop from open()). Nothing is decoded for a loop that is
    only stored (a batch filling the library), and one that is played shows its first
    frame after one frame's decoding, not all of them. ValueError if the bytes do not
    match their size and SHA-256, or the metadata is not a loop's."""
    stored.check()
    n, height, width = meta.get("n_frames"), meta.get("height"), meta.get("width")
    doc = {"n_frames": n, "height": height, "width": width}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in doc.values()):
        raise ValueError(f"loop metadata must give n_frames, height and width, got {doc}")
    if n * height * width * 3 > MAX_LOOP_BYTES:
        raise ValueError(f"{n} frames of {width}x{height} are more than a loop may hold")
    # np.empty takes memory page by page as the frames are written, not before.
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    loop = Loop.from_metadata(meta, frames, SceneSpec.from_dict(meta["spec"]))
    loop.stored = stored
    loop.loader = _FrameLoader(f"{loop.spec.id} seed {loop.seed}", doc, frames, 0, stored.data)
    return loop


def _decode_frames(data: bytes, doc: dict) -> np.ndarray:
    """All of a frames file's frames (its bytes), checked against `doc`; decoded on
    several threads, as get() wants the whole loop at once."""
    frames = np.empty((doc["n_frames"], doc["height"], doc["width"], 3), dtype=np.uint8)
    for index, image in _decoded_frames(data, doc, threaded=True):
        frames[index] = image
    return frames


def _decoded_frames(source: Path | bytes, doc: dict,
                    threaded: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB frame) of a frames file (or its bytes) as they decode, checked
    against `doc`: ValueError for a frame of another size, or more or fewer frames.
    Not `threaded` by default: frame threads hold back the first frame by several,
    and a loop being opened wants its first at once."""
    import av

    n, height, width = doc["n_frames"], doc["height"], doc["width"]
    count = 0
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source),
                 mode="r") as container:
        stream = container.streams.video[0]
        if threaded:
            stream.thread_type = "AUTO"
        for index, vf in enumerate(container.decode(stream)):
            if index >= n:
                raise ValueError(f"more than the {n} frames recorded")
            if (vf.width, vf.height) != (width, height):
                raise ValueError(f"frame {index} is {vf.width}x{vf.height}, "
                                 f"expected {width}x{height}")
            yield index, vf.to_ndarray(format="rgb24")
            count = index + 1
    if count != n:
        raise ValueError(f"{count} frames, expected {n}")


@dataclass
class Standby:
    """A stored loop's first `count` frames, decoded ahead, in an array with room for
    all of them: what Library.open() plays at once."""
    key: str
    frames: np.ndarray
    count: int

    def __repr__(self) -> str:
        return f"Standby({self.key}, {self.count} of {len(self.frames)} frames)"


class _FrameLoader:
    """Decodes a loop's frames, from a frames file or its bytes (`source`), into the
    loop's array in a thread of its own, so the loop can start playing before the
    last frame is there (see Library.open, loop_from_stored). The thread starts on
    start() or the first wait() for a frame not there yet."""

    def __init__(self, name: str, doc: dict, frames: np.ndarray, known: int,
                 source: Path | bytes):
        self.name, self.doc, self.frames, self.source = name, doc, frames, source
        self.count = known                  # frames readable so far
        self.error: Exception | None = None
        self._cond = threading.Condition()
        self._started = False
        self._thread = threading.Thread(target=self._run, name=f"library load {name}",
                                        daemon=True)

    def start(self) -> None:
        with self._cond:
            if self._started:
                return
            self._started = True
        self._thread.start()

    @property
    def done(self) -> bool:
        return self.count >= len(self.frames) or self.error is not None

    def wait(self, index: int, timeout: float | None = 30.0) -> None:
        """Return once frame `index` is decoded; raise the loading error if there was
        one, TimeoutError if it does not come in `timeout` seconds."""
        if index < self.count:
            return
        self.start()
        with self._cond:
            if not self._cond.wait_for(lambda: index < self.count or self.error is not None,
                                       timeout=timeout):
                raise TimeoutError(f"frame {index} of loop {self.name} was not decoded "
                                   f"within {timeout} s")
        if index >= self.count:
            raise self.error

    def _run(self) -> None:
        try:
            self._load()
        finally:
            self._finished()

    def _load(self) -> None:
        if self.count:
            # A standby's first frames cover the first moments: the rest can yield the
            # CPU to the first frames of the crossfade being encoded.
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
            except (AttributeError, OSError):
                pass
        problem = None
        try:
            for index, image in _decoded_frames(self.source, self.doc):
                if index >= self.count:       # a standby's frames are there already
                    self.frames[index] = image
                    with self._cond:
                        self.count = index + 1
                        self._cond.notify_all()
            # Checked after decoding, not before: the first frames are wanted at once.
            problem = self._check()
        except FileNotFoundError:
            problem = "its frames file is missing"
        except MemoryError as exc:
            self._fail(exc)
            return
        except Exception as exc:
            problem = f"its frames do not decode ({type(exc).__name__}: {exc})"
        if problem is not None:
            self._fail(self._damaged(problem))

    def _check(self) -> str | None:
        """What is wrong with the source, found after decoding it; bytes in memory
        were checked against their SHA-256 before (loop_from_stored)."""
        return None

    def _damaged(self, problem: str) -> Exception:
        return LibraryError(f"loop {self.name} is damaged: {problem}")

    def _finished(self) -> None:
        pass

    def _fail(self, error: Exception) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()


class _FileLoader(_FrameLoader):
    """A stored loop's frames file decoded by Library.open(): checked against its
    checksum after, moved aside when damaged, never evicted meanwhile."""

    def __init__(self, library: Library, key: str, doc: dict, frames: np.ndarray, known: int):
        super().__init__(key, doc, frames, known, library._frames_path(key))
        self.library, self.key = library, key

    def _check(self) -> str | None:
        size, digest = _file_digest(self.source)
        storage = self.doc["storage"]
        if size != storage["bytes"]:
            return f"its frames file has {size} bytes, expected {storage['bytes']}"
        if digest != storage["sha256"]:
            return "its frames file does not match its checksum"
        return None

    def _damaged(self, problem: str) -> Exception:
        with contextlib.suppress(Exception):
            self.library._quarantine_entry(self.key, self.doc, problem)
        return CorruptLoopError(f"loop {self.key} in {self.library.root} is damaged: "
                                f"{problem}; moved into {CORRUPT_DIR}/")

    def _finished(self) -> None:
        with self.library._thread_lock:
            self.library._loading.remove(self.key)


# ---------------------------------------------------------------------- metadata files

_REQUIRED = {"key": str, "spec": dict, "seed": int, "generator": str, "params": dict,
             "fps": (int, float), "n_frames": int, "width": int, "height": int,
             "created": (int, float), "bytes": int, "storage": dict, "metrics": dict}

# Decoded frames of one loop, at most: reading a loop allocates them all at once, so a
# damaged frame count (10^7) must not reach the allocator. 8 GiB is 2,900 frames at
# 1280x720, far beyond any loop lofid makes (60 frames by default).
MAX_LOOP_BYTES = 8 << 30
# Metadata takes about 1 KiB; a file far larger is not one of ours.
_MAX_META_BYTES = 1 << 20


def _check_meta(doc: Any, key: str) -> dict:
    """The rules a loop's metadata record follows: checked before it is written and
    every time it is read, so what the library hands out was valid when stored and
    still is. The rules on values are Loop's own (Loop.__post_init__), so a record
    that passes here rebuilds into a Loop. ValueError naming what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    for field, kind in _REQUIRED.items():
        if field not in doc:
            raise ValueError(f"lacks {field!r}")
        if not isinstance(doc[field], kind) or isinstance(doc[field], bool):
            raise ValueError(f"{field!r} has the wrong type ({type(doc[field]).__name__})")
    if doc["key"] != key:
        raise ValueError(f"it names key {doc['key']!r}, its file name says {key!r}")
    if not math.isfinite(doc["fps"]) or doc["fps"] <= 0:
        raise ValueError(f"'fps' must be a finite number > 0, got {doc['fps']!r}")
    if not doc["generator"]:
        raise ValueError("'generator' is empty")
    n, height, width = doc["n_frames"], doc["height"], doc["width"]
    if n < 2:
        raise ValueError(f"'n_frames' must be at least 2, got {n}")
    if height < 1 or width < 1:
        raise ValueError(f"the frames must be at least 1x1 pixels, got {width}x{height}")
    if n * height * width * 3 > MAX_LOOP_BYTES:
        raise ValueError(f"{n} frames of {width}x{height} would take "
                         f"{n * height * width * 3 / 2**30:.1f} GiB decoded, more than the "
                         f"{MAX_LOOP_BYTES / 2**30:g} GiB a loop may")
    if not math.isfinite(doc["created"]):
        raise ValueError(f"'created' must be a unix time, got {doc['created']!r}")
    # None in stored metrics is an infinite seam ratio (see Loop.metadata).
    check_metrics({k: math.inf if v is None else v for k, v in doc["metrics"].items()})
    size = doc["params"].get("size")
    if size is not None and not (
            isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)):
        raise ValueError(f"'params' size must be [width, height], got {size!r}")
    storage = doc["storage"]
    if storage.get("format") != FRAMES_FORMAT or storage.get("version") != FORMAT_VERSION:
        raise ValueError(f"frames stored as {storage.get('format')!r} version "
                         f"{storage.get('version')!r}; this library reads "
                         f"{FRAMES_FORMAT!r} version {FORMAT_VERSION}")
    if not isinstance(storage.get("bytes"), int) or not isinstance(storage.get("sha256"), str):
        raise ValueError("its storage record lacks the frames file's bytes or sha256")
    if storage["bytes"] != doc["bytes"] or doc["bytes"] < 0:
        raise ValueError(f"'bytes' says {doc['bytes']}, its storage record "
                         f"{storage['bytes']}")
    last = doc.get("last_played")
    if last is not None and (isinstance(last, bool) or not isinstance(last, (int, float))
                             or not math.isfinite(last)):
        raise ValueError(f"'last_played' must be a unix time or null, got {last!r}")
    doc.setdefault("last_played", None)
    if "scene" not in doc["spec"]:     # what loops are listed and found by
        raise ValueError("its spec names no scene")
    try:
        SceneSpec.from_dict(doc["spec"])   # a spec this version cannot read is unusable
    except (TypeError, ValueError) as exc:
        raise ValueError(f"its spec cannot be read: {exc}") from None
    return doc


def _parse_meta(raw: bytes, key: str) -> dict:
    """A metadata file's content, checked by _check_meta. ValueError naming what is
    wrong."""
    def no_constants(name: str):
        raise ValueError(f"{name} is not a JSON number")
    try:
        doc = json.loads(raw, parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return _check_meta(doc, key)


def _meta_bytes(path: Path) -> bytes:
    """The content of the metadata file at `path`. FileNotFoundError if there is none;
    ValueError if it is something else under that name (a folder, a FIFO, which would
    block a plain read forever) or far too large to be metadata."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "folder" if stat.S_ISDIR(mode) else "special file"
            raise ValueError(f"a {kind}, not a file")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_META_BYTES:
                raise ValueError(f"more than {_MAX_META_BYTES} bytes: not metadata")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_json(path: Path, doc: dict) -> None:
    data = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------- small helpers

def _check_max_bytes(max_bytes: Any) -> int | None:
    if max_bytes is None:
        return None
    if (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer))
            or max_bytes < 0):
        raise ValueError(f"max_bytes must be a whole number of bytes >= 0 or None, "
                         f"got {max_bytes!r}")
    return int(max_bytes)


def _eviction_order(doc: dict) -> tuple[float, str]:
    # Least recently played first; a loop never played counts from when it was made.
    last = doc["last_played"]
    return (last if last is not None else doc["created"], doc["key"])


def _canonical(value: Any, where: str) -> Any:
    """`value` as plain JSON types for hashing: tuples are lists, numpy scalars are
    Python numbers, and whole floats are ints (12.0 and 12 make the same loop)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must hold finite numbers, got {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} must have string keys, got key {k!r}")
            out[k] = _canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{where} must hold only numbers, strings, lists and dicts, "
                     f"got {type(value).__name__}: {value!r}")


def _file_digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()
