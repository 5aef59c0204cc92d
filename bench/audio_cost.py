"""CPU cost of the audio track: one hour read the way the player reads it.

    python bench/audio_cost.py [--hours 1]

Writes a playlist of two 60-s MP3s (44.1 kHz) and two 60-s WAVs (48 kHz) of music-like
noise, then reads 1600-sample chunks (one 30 fps frame each) from an AudioTrack with
1-s crossfades, looping, as fast as it can. Prints CPU-seconds and underruns.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import av
import numpy as np


def write(path: Path, codec: str, rate: int, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    # a few drifting tones over soft noise: something a codec has to work at
    x = sum(0.1 * np.sin(2 * np.pi * f * t * (1 + 0.01 * np.sin(t))) for f in (110, 220, 330, 495))
    x = (x + 0.02 * rng.standard_normal(n)).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout="stereo")
        fmt = "fltp" if codec == "libmp3lame" else "s16"
        for i in range(0, n, 1152):
            block = x[i:i + 1152]
            if fmt == "s16":
                data = np.repeat((block * 32767).astype(np.int16)[:, None], 2, 1).reshape(1, -1)
            else:
                data = np.stack([block, block])
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="stereo")
            frame.sample_rate = rate
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    a = ap.parse_args()
    from lofid.audio import AudioTrack

    folder = Path(tempfile.mkdtemp())
    write(folder / "1.mp3", "libmp3lame", 44100, 60, 1)
    write(folder / "2.wav", "pcm_s16le", 48000, 60, 2)
    write(folder / "3.mp3", "libmp3lame", 44100, 60, 3)
    write(folder / "4.wav", "pcm_s16le", 48000, 60, 4)
    chunks = int(a.hours * 3600 * 30)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    with AudioTrack([folder], crossfade=1.0, max_wait=2.0) as track:
        for _ in range(chunks):
            track.read(1600)
        stats = dict(track.stats)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    seconds = chunks / 30
    print(f"{seconds:.0f} s of audio from 2 MP3 + 2 WAV, 1-s crossfades, looped: "
          f"{cpu:.2f} CPU-s ({cpu / seconds:.4f} per stream second); stats {stats}")


if __name__ == "__main__":
    main()
