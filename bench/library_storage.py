"""How a painted loop is best stored losslessly: bytes on disk, encode and decode CPU.

    python bench/library_storage.py [--size 1280x720] [--frames 120]

Paints one loop, stores it with each candidate lossless format and reads it back
(checking it is bit-exact). The library uses the format marked *.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import av
import numpy as np

from lofid.generators import get
from lofid.scene import parse

CANDIDATES = [
    # name, codec, pixel format, options
    ("h264-rgb qp0 ultrafast *", "libx264rgb", "rgb24", {"qp": "0", "preset": "ultrafast"}),
    ("h264-rgb qp0 fast", "libx264rgb", "rgb24", {"qp": "0", "preset": "fast"}),
    ("ffv1 range coder", "ffv1", "bgr0", {"level": "3", "coder": "range_def", "slicecrc": "1"}),
    ("ffv1 rice coder", "ffv1", "bgr0", {"level": "3", "coder": "rice", "slicecrc": "1"}),
]


def encode(frames, codec, pix, options, path):
    with av.open(path, "w", format="matroska") as c:
        s = c.add_stream(codec, rate=12, options=options)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = pix
        for f in frames:
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            for p in s.encode(vf if pix == "rgb24" else vf.reformat(format=pix)):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def decode(path):
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--text", default="rainy night, coffee shop")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    frames = get("procedural")(parse(a.text), 1, (w, h), a.frames, 12).frames
    tmp = tempfile.mkdtemp()
    print(f"{a.text!r} {w}x{h}, {a.frames} frames; raw {frames.nbytes / 1e6:.1f} MB")
    print(f"{'format':28} {'MB':>7} {'encode CPU s':>13} {'decode CPU s':>13} exact")
    for name, codec, pix, options in CANDIDATES:
        path = os.path.join(tmp, name.split()[0] + ".mkv")
        t = time.process_time()
        encode(frames, codec, pix, options, path)
        enc = time.process_time() - t
        t = time.process_time()
        back = decode(path)
        dec = time.process_time() - t
        print(f"{name:28} {os.path.getsize(path) / 1e6:7.1f} {enc:13.2f} {dec:13.2f} "
              f"{np.array_equal(back, frames)}")
    path = os.path.join(tmp, "frames.npz")
    t = time.process_time()
    np.savez_compressed(path, frames=frames)
    enc = time.process_time() - t
    t = time.process_time()
    back = np.load(path)["frames"]
    dec = time.process_time() - t
    print(f"{'npz (zlib)':28} {os.path.getsize(path) / 1e6:7.1f} {enc:13.2f} {dec:13.2f} "
          f"{np.array_equal(back, frames)}")


if __name__ == "__main__":
    main()
