"""The audio track: a looping playlist of music files, as one endless 48 kHz stereo stream.

The player pulls exactly `48000 / fps` samples per output frame with `read()`, so the
sound stays in step with the picture by construction: `read(count)` always returns
exactly `count` samples, music or silence.

Files (WAV, FLAC, MP3, OGG/Opus) are decoded with PyAV in a background thread, a few
seconds ahead, into a bounded buffer, and resampled to 48 kHz stereo float32. The
reader never waits on a codec for long: when the buffer is empty it waits at most
`max_wait` seconds and then pads with silence (counted in `stats`). Tracks follow one
another gaplessly; where one ends and the next begins they overlap for a short
equal-power crossfade. Where music starts from silence or ends into it away from zero
(a generated track rarely begins or ends at zero), it fades in or out over 10 ms: a
step clicks. A track that starts and ends at zero plays bit-exact. A file
that does not decode (whatever its name) is skipped with a warning.

A file added with `info` (a map: the prompt of a generated track, its track_id) is
announced when it begins to sound: `on_sound(info)` runs on the reader's thread, after
the read that made it audible, so a picture can follow the music to the sample.

Decoding runs one track ahead at most: the track that plays and, once that one is
decoded to its end, the next. The crossfade is mixed on the reader's side, so a track
added with `add(path, next=True)` still takes the place of a next track that has been
decoded ahead but has not begun to sound.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from pathlib import Path

import av
import numpy as np

from lofid.media import AUDIO_CHANNELS, AUDIO_RATE

log = logging.getLogger("lofid.audio")

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus")
_BATCH = AUDIO_RATE // 5      # samples handed from the decoder to the reader at a time
_RAMP = AUDIO_RATE // 100     # 10 ms fade from or into silence
_STEP = 2.0 ** -10            # a step to or from silence under this (-60 dBFS) is inaudible


class _Entry:
    """One place in the playlist; compared by identity, so a file may be listed twice.
    `info`: what the one who added it said of it (prompt, track_id), or None."""
    __slots__ = ("path", "info")

    def __init__(self, path: Path, info: dict | None = None):
        self.path = path
        self.info = info


class _Track:
    """One playing of a playlist entry: its decoded samples waiting to be read."""

    def __init__(self, entry: _Entry):
        self.entry = entry
        self.path = entry.path
        self.chunks: deque[np.ndarray] = deque()   # (k, 2) float32 arrays, in order
        self.offset = 0                # samples of chunks[0] already read
        self.buffered = 0              # samples decoded and not yet read
        self.decoded = 0               # samples decoded so far (the length, once done)
        self.consumed = 0              # samples read so far
        self.started = False           # the decoder has taken it
        self.done = False              # decoded to its end
        self.cancelled = False         # taken out before it began to sound
        self.sounded = False           # its first samples have been read
        self.ramp_in = False           # it began to sound from silence: fade it in
        self.duration_hint: float | None = None   # seconds, from the container
        self.fade_len: int | None = None          # set when its fade into the next begins
        self.fade_pos = 0

    def take(self, count: int) -> np.ndarray:
        """The next `count` samples (count <= buffered)."""
        parts = []
        need = count
        while need:
            chunk = self.chunks[0]
            n = min(len(chunk) - self.offset, need)
            parts.append(chunk[self.offset:self.offset + n])
            self.offset += n
            need -= n
            if self.offset == len(chunk):
                self.chunks.popleft()
                self.offset = 0
        self.buffered -= count
        self.consumed += count
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class AudioTrack:
    """A playlist of audio files played as one endless 48 kHz stereo float32 stream.

    sources: files and folders (folders are expanded to their audio files, sorted by
    path); crossfade: seconds two tracks overlap (0 = a gapless cut); loop: start the
    playlist again after its last track. buffer_seconds: how far ahead the decoder
    runs; max_wait: the longest one `read()` waits for the decoder before it pads
    with silence (a file output made faster than real time may want more).
    """

    def __init__(self, sources: list[str | Path] | str | Path = (), crossfade: float = 1.0,
                 loop: bool = True, *, buffer_seconds: float = 4.0, max_wait: float = 0.02):
        _check_seconds("crossfade", crossfade)
        _check_seconds("buffer_seconds", buffer_seconds)
        _check_seconds("max_wait", max_wait)
        if isinstance(sources, (str, Path)):
            sources = [sources]
        self.crossfade = float(crossfade)
        self.loop = bool(loop)
        self.max_wait = float(max_wait)
        self.position = 0              # samples handed out so far, music and silence
        self.skipped: list[dict] = []  # {"path", "reason"} for each file that did not decode
        self.stats = {"underruns": 0, "padded_samples": 0, "silent_samples": 0, "tracks": 0}
        self.on_sound = None           # callable(info) for tracks added with info
        self._announce: list[dict] = []  # infos of tracks that began to sound in this read

        self._fade = round(self.crossfade * AUDIO_RATE)
        # Room for a whole crossfade (both sides) plus a second, whatever buffer_seconds says.
        self._capacity = max(round(buffer_seconds * AUDIO_RATE), 2 * self._fade + AUDIO_RATE)
        self._playlist: list[_Entry] = [_Entry(p) for s in sources for p in _expand(s)]
        self._next_index = 0           # the entry to decode after the newest track
        self._tracks: deque[_Track] = deque()   # [0] plays; [1], when present, follows it
        self._closed = False
        self._cond = threading.Condition()
        with self._cond:
            self._queue_next_locked()
        self._thread = threading.Thread(target=self._decode_loop, name="audio decoder", daemon=True)
        self._thread.start()

    # --- the player's side ---------------------------------------------------------

    def read(self, count: int) -> np.ndarray:
        """Exactly `count` samples, (count, 2) float32; silence where there is no music."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"read count must be a whole number of samples >= 0, got {count!r}")
        count = int(count)
        out = np.zeros((count, AUDIO_CHANNELS), np.float32)
        filled = 0
        deadline = time.monotonic() + self.max_wait
        with self._cond:
            while filled < count:
                got = self._fill_locked(out, filled, count)
                filled += got
                if filled == count:
                    break
                if not self._tracks:
                    # Nothing to play (empty playlist, or the end of one that does not loop).
                    self.stats["silent_samples"] += count - filled
                    break
                if got:
                    self._cond.notify_all()    # room in the buffer for the decoder
                wait = deadline - time.monotonic()
                if wait <= 0:
                    self.stats["underruns"] += 1
                    self.stats["padded_samples"] += count - filled
                    break
                self._cond.wait(wait)
            self.position += count
            self._cond.notify_all()
            announce, self._announce = self._announce, []
        for info in announce:
            # Outside the lock: whoever listens may ask the track things.
            try:
                if self.on_sound is not None:
                    self.on_sound(dict(info))
            except Exception:          # a listener's fault must never stop the sound
                log.exception("on_sound failed for %s", info)
        return out

    def add(self, path: str | Path, *, next: bool = False, info: dict | None = None) -> None:
        """Add a file or folder to the playlist: at its end, or right after the current
        track. `info` (for a file) is handed to `on_sound` when it begins to sound."""
        entries = [_Entry(p, dict(info) if info else None) for p in _expand(path)]
        if not entries:
            return
        with self._cond:
            if next:
                if len(self._tracks) > 1 and self._tracks[0].fade_len is None:
                    # The next track has been decoded ahead but has not begun to sound:
                    # the new one takes its place and it follows the new one.
                    upcoming = self._tracks.pop()
                    upcoming.cancelled = True
                    self._next_index = self._index_of(upcoming.entry, self._next_index)
                at = min(self._next_index, len(self._playlist))
                self._playlist[at:at] = entries
                self._next_index = at
            else:
                self._playlist.extend(entries)
            self._queue_next_locked()
            self._cond.notify_all()

    def replace(self, path: str | Path) -> None:
        """The playlist becomes `path`'s files (a schedule entry's music): the track
        sounding now plays on and crosses into them, then they play, looped.
        ValueError when `path` holds no audio file."""
        entries = [_Entry(p) for p in _expand(path)]
        if not entries:
            raise ValueError(f"{str(path)!r} holds no audio files")
        with self._cond:
            if len(self._tracks) > 1 and self._tracks[0].fade_len is None:
                # The next track is decoded ahead but has not begun to sound: the
                # new playlist's first takes its place.
                self._tracks.pop().cancelled = True
            self._playlist = entries
            self._next_index = 0
            self._queue_next_locked()
            self._cond.notify_all()

    def now_playing(self) -> dict | None:
        """{"path", "position_s", "duration_s"} of the track that sounds now, or None."""
        with self._cond:
            if not self._tracks:
                return None
            t = self._tracks[0]
            duration = t.decoded / AUDIO_RATE if t.done else t.duration_hint
            return {**(t.entry.info or {}), "path": str(t.path),
                    "position_s": t.consumed / AUDIO_RATE, "duration_s": duration}

    def up_next(self) -> Path | None:
        """The track decoded ahead to follow the one that sounds, or None while there is
        none yet (it is decoded while the current one plays, so a crossfade never waits)."""
        with self._cond:
            return self._tracks[1].path if len(self._tracks) > 1 else None

    def find(self, key: str, value) -> Path | None:
        """The path of a playlist entry added with info[key] == value, or None."""
        with self._cond:
            for e in self._playlist:
                if e.info is not None and e.info.get(key) == value:
                    return e.path
        return None

    @property
    def playlist(self) -> list[Path]:
        with self._cond:
            return [e.path for e in self._playlist]

    def close(self) -> None:
        """Stop the decoder; later reads return silence."""
        with self._cond:
            self._closed = True
            self._tracks.clear()
            self._cond.notify_all()
        self._thread.join(1.0)   # a decoder stuck opening a file is a daemon thread: leave it

    def __enter__(self) -> "AudioTrack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading (with the lock held) -----------------------------------------------

    def _fill_locked(self, out: np.ndarray, pos: int, end: int) -> int:
        """Copy what is ready into out[pos:end]; returns how many samples."""
        start = pos
        while pos < end:
            if not self._tracks:
                self._queue_next_locked()
                if not self._tracks:
                    break
            cur = self._tracks[0]
            if cur.fade_len is not None:
                # Equal-power crossfade: cos/sin gains keep the loudness of two
                # unrelated pieces of music steady through the overlap.
                nxt = self._tracks[1]
                self._sound_locked(cur)
                self._sound_locked(nxt)
                k = min(end - pos, cur.fade_len - cur.fade_pos)
                angle = (np.arange(cur.fade_pos, cur.fade_pos + k) + 0.5) * (math.pi / 2 / cur.fade_len)
                gain_out = np.cos(angle, dtype=np.float32)[:, None]
                gain_in = np.sin(angle, dtype=np.float32)[:, None]
                out[pos:pos + k] = cur.take(k) * gain_out + nxt.take(k) * gain_in
                cur.fade_pos += k
                pos += k
                if cur.fade_pos == cur.fade_len:
                    self._finish_current_locked()
                continue
            if not cur.done:
                # Keep a crossfade's worth back: the track may end within it.
                k = min(end - pos, cur.buffered - self._fade)
                if k <= 0:
                    break
                self._play_locked(cur, out[pos:pos + k])
                pos += k
                continue
            left = cur.buffered
            nxt = self._tracks[1] if len(self._tracks) > 1 else None
            if nxt is None:
                if left == 0:
                    self._finish_current_locked()
                    continue
                k = min(end - pos, left)             # nothing follows: play it out
                self._play_locked(cur, out[pos:pos + k], into_silence=True)
                pos += k
                continue
            fade = min(self._fade, cur.decoded // 2, left)
            if nxt.done:
                fade = min(fade, nxt.buffered)
            if left > fade:
                k = min(end - pos, left - fade)
                self._play_locked(cur, out[pos:pos + k])
                pos += k
                continue
            if nxt.buffered < fade:
                break                                # the next track's start is not decoded yet
            if fade == 0:
                self._finish_current_locked()
                continue
            cur.fade_len, cur.fade_pos = fade, 0
        return pos - start

    def _play_locked(self, track: _Track, out: np.ndarray, into_silence: bool = False) -> None:
        """Fill `out` with the track's next samples, outside a crossfade: faded in if
        it began from silence, faded out over its last samples if silence follows."""
        if not track.sounded:
            head = track.chunks[0][track.offset:track.offset + 2]
            track.ramp_in = _is_step(head[0], head[-1])
        self._sound_locked(track)
        first = track.consumed
        # Decoded to its end (into_silence comes only then): its last samples are known.
        ramp_out = into_silence and _is_step(track.chunks[-1][-1], track.chunks[-1][-2:][0])
        out[:] = track.take(len(out))
        if track.ramp_in and first < _RAMP:
            n = min(len(out), _RAMP - first)
            out[:n] *= _rise(np.arange(first, first + n))[:, None]
        if ramp_out:
            left_after = track.decoded - first - np.arange(len(out))   # samples from each to the end
            near = left_after <= _RAMP
            if near.any():
                out[near] *= _rise(left_after[near] - 1)[:, None]

    def _sound_locked(self, track: _Track) -> None:
        if not track.sounded:
            track.sounded = True
            self.stats["tracks"] += 1
            log.info("playing %s", track.path)
            if track.entry.info:
                self._announce.append(track.entry.info)

    def _finish_current_locked(self) -> None:
        self._tracks.popleft()
        self._queue_next_locked()
        self._cond.notify_all()

    # --- the playlist (with the lock held) -----------------------------------------

    def _queue_next_locked(self) -> None:
        """Line up the track after the newest one, once that one is decoded to its end."""
        if self._closed or len(self._tracks) >= 2:
            return
        if self._tracks and not self._tracks[-1].done:
            return
        if self._next_index >= len(self._playlist):
            if not (self.loop and self._playlist):
                return
            self._next_index = 0
        entry = self._playlist[self._next_index]
        self._next_index += 1
        self._tracks.append(_Track(entry))
        self._cond.notify_all()

    def _index_of(self, entry: _Entry, default: int) -> int:
        for i, e in enumerate(self._playlist):
            if e is entry:
                return i
        return default

    def _skip_locked(self, track: _Track, reason: str) -> None:
        log.warning("skipping audio file %s: %s", track.path, reason)
        self.skipped.append({"path": str(track.path), "reason": reason})
        if track in self._tracks:
            self._tracks.remove(track)
        i = self._index_of(track.entry, -1)
        if i >= 0:
            del self._playlist[i]
            if i < self._next_index:
                self._next_index -= 1
        self._queue_next_locked()

    # --- decoding (the decoder thread) ----------------------------------------------

    def _decode_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    track = next((t for t in self._tracks if not t.started), None)
                    if track is not None:
                        track.started = True
                        break
                    self._cond.wait()
            try:
                error = self._decode(track)
            except Exception as e:    # never let the thread die: skip the file instead
                error = f"{type(e).__name__}: {e}"
            with self._cond:
                if track.cancelled or self._closed:
                    continue
                if track.decoded == 0:
                    self._skip_locked(track, error or "no audio in it")
                else:
                    if error:
                        log.warning("audio file %s stopped decoding after %.1f s: %s",
                                    track.path, track.decoded / AUDIO_RATE, error)
                    track.done = True
                    self._queue_next_locked()
                self._cond.notify_all()

    def _decode(self, track: _Track) -> str | None:
        """Decode a track into its buffer; returns why it stopped early, or None."""
        # A WAV header says all there is to know; FFmpeg's default probe would read
        # and scan megabytes of PCM first (30 ms of CPU for each file opened).
        options = {"probesize": "32768"} if track.path.suffix.lower() == ".wav" else {}
        try:
            container = av.open(str(track.path), options=options, metadata_errors="ignore")
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        try:
            if not container.streams.audio:
                return "no audio stream"
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                track.duration_hint = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                track.duration_hint = container.duration / av.time_base
            # A mono file goes to both speakers at full level (libswresample would
            # place it in the centre, 3 dB down).
            mono = stream.codec_context.channels == 1
            resampler = av.AudioResampler(format="flt", layout="mono" if mono else "stereo",
                                          rate=AUDIO_RATE)
            # Decoded frames are small (1152 samples for MP3): hand them over in batches,
            # so the reader and the decoder meet a few times a second, not hundreds.
            batch: list[np.ndarray] = []
            batched = 0
            error = None
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        batch.append(out.to_ndarray())
                        batched += out.samples
                    if batched >= _BATCH:
                        if not self._push(track, batch, mono):
                            return None
                        batch, batched = [], 0
                batch.extend(out.to_ndarray() for out in resampler.resample(None))
            except Exception as e:   # a damaged file: keep what decoded
                error = f"{type(e).__name__}: {e}"
            self._push(track, batch, mono)
            return error
        finally:
            container.close()

    def _push(self, track: _Track, arrays: list[np.ndarray], mono: bool) -> bool:
        """Append decoded samples, waiting for room; False when the track is no longer wanted."""
        if not arrays:
            return True
        samples = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float32, copy=False)
        if mono:
            samples = np.repeat(samples[:, None], 2, axis=1)
        else:
            samples = samples.reshape(-1, 2)
        if not len(samples):
            return True
        with self._cond:
            # Past two crossfades' worth the reader can always go on, so waiting for
            # room then cannot hold both sides up, however large a decoded frame is.
            while not self._closed and not track.cancelled:
                held = sum(t.buffered for t in self._tracks)
                if held + len(samples) <= self._capacity or held <= 2 * self._fade:
                    break
                self._cond.wait()
            if self._closed or track.cancelled:
                return False
            track.chunks.append(samples)
            track.buffered += len(samples)
            track.decoded += len(samples)
            self._cond.notify_all()
        return True


def _is_step(edge: np.ndarray, inner: np.ndarray) -> bool:
    """Whether going from silence to `edge` (whose neighbour inside the track is
    `inner`) is a step that clicks: further from zero than the music itself moves
    from one sample to the next (a sine cut at a zero crossing is not one)."""
    jump = np.abs(edge)
    return bool(np.any((jump > _STEP) & (jump > 2 * np.abs(edge - inner))))


def _rise(i: np.ndarray) -> np.ndarray:
    """Gains of a raised-cosine fade-in at sample offsets i (0 .. _RAMP - 1)."""
    return (0.5 - 0.5 * np.cos((i + 0.5) * (math.pi / _RAMP))).astype(np.float32)


def probe(path: str | Path) -> float | None:
    """Check that `path` holds audio that decodes: its length in seconds (None when
    the container does not say). Raises ValueError saying why it is not playable."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    why = None
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                why = "it has no audio stream"
            else:
                stream = container.streams.audio[0]
                if next(iter(container.decode(stream)), None) is None:
                    why = "no audio in it decodes"
                elif stream.duration is not None and stream.time_base is not None:
                    return float(stream.duration * stream.time_base)
                else:
                    return container.duration / av.time_base if container.duration else None
    except Exception as e:          # FFmpeg's own errors: not audio, damaged, unreadable
        why = f"{type(e).__name__}: {e}"
    raise ValueError(f"{str(path)!r} is not audio that decodes ({why})")


def _expand(source: str | Path) -> list[Path]:
    """A file as itself; a folder as its audio files (recursively, sorted by path)."""
    path = Path(source).expanduser()
    if path.is_dir():
        def visible(f: Path) -> bool:
            return not any(part.startswith(".") for part in f.relative_to(path).parts)
        files = [f for f in path.rglob("*")
                 if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file() and visible(f)]
        files.sort(key=lambda f: (f.relative_to(path).as_posix().lower(), f.as_posix()))
        if not files:
            log.warning("audio folder %s holds no audio files (%s)", path, " ".join(AUDIO_EXTENSIONS))
        return files
    # Whatever its name (an .m4a plays too): a file that is missing or does not decode
    # is skipped with a warning when its turn comes, never fatal.
    return [path]


def _check_seconds(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
