"""Media the tests make for themselves."""

from __future__ import annotations

import av
import numpy as np


def write_tone_wav(path, freq: float = 440.0, seconds: float = 1.0, rate: int = 48000):
    """A stereo 16-bit WAV of a sine tone: a stand-in for a track lofi.nvim made."""
    n = int(seconds * rate)
    tone = (np.sin(np.arange(n) * 2 * np.pi * freq / rate) * 8000).astype(np.int16)
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.repeat(tone[:, None], 2, 1).reshape(1, -1),
                                           format="s16", layout="stereo")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path
