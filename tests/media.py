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


def write_float_wav(path, samples, rate: int = 32000):
    """A WAV as lofi.nvim's backend writes its tracks: 32-bit float, two channels
    carrying the same mono samples, WAVE_FORMAT_EXTENSIBLE with the IEEE float
    subtype, at 32 kHz (MusicGen) or 48 kHz (ACE-Step)."""
    import struct
    mono = np.asarray(samples, dtype="<f4")
    data = np.repeat(mono[:, None], 2, axis=1).tobytes()
    ieee_float = bytes.fromhex("0300000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI16s", 0xFFFE, 2, rate, rate * 8, 8, 32, 22, 32, 0x3, ieee_float)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt \
        + b"data" + struct.pack("<I", len(data)) + data
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
