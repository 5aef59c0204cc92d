"""From a new loop being ready to its crossfade starting, in real time at 1080p30.

    python bench/switch_latency.py [--seconds 60] [--rotate 12]

Loops are made first and kept in a temporary library; the director offers the next
one every --rotate seconds of output. The player, paced to the wall clock as for a
stream, then prepares it (scale, one repetition encoded) in a worker thread while the
current loop keeps playing, and starts the crossfade at a keyframe. For each
crossfade this prints how many output frames passed from the loop being handed to
the player to its crossfade starting, against one repetition of the current loop
(the target: at most one repetition).
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rotate", type=float, default=12.0)
    ap.add_argument("--size", default="1920x1080")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))

    from lofid.audio import AudioTrack
    from lofid.director import Director, DirectorSettings
    from lofid.generators import get
    from lofid.library import Library
    from lofid.outputs.null import NullOutput
    from lofid.player import Player, PlayerSettings
    from lofid.scene import parse

    library = Library(Path(tempfile.mkdtemp()) / "library")
    spec = parse("rainy window, night")
    loop_size = (min(w, 1280), min(w, 1280) * h // w)
    paint = get("procedural")
    for seed in range(1, 6):
        library.put(paint(spec, seed, loop_size, 60, 10.0))

    director = Director(library, spec, DirectorSettings(loop_size=loop_size, frames=60, fps=10.0,
                                                        rotate=a.rotate, generate=False))
    rows = []
    player = None

    def on_event(name, payload):
        if name == "crossfade":
            rows.append((payload["frame"], player.stats["asked_to_crossfade_frames"],
                         player.stats["ready_to_crossfade_frames"]))

    player = Player(director, [NullOutput()], AudioTrack([]),
                    PlayerSettings(fps=Fraction(30), size=(w, h), duration=a.seconds,
                                   realtime=True), on_event=on_event)
    director.attach_clock(lambda: player.seconds)
    player.run()
    director.stop()
    repetition = 60 * 30 // 10
    print(f"{w}x{h}@30, realtime, loops of 60 frames at 10 fps (one repetition = "
          f"{repetition} output frames), rotate {a.rotate:g} s; late_max_s "
          f"{player.stats['late_max_s']:.4f}")
    print(f"{'crossfade at frame':>18} {'handed -> crossfade':>20} {'prepared -> crossfade':>22}")
    for frame, asked, ready in rows:
        print(f"{frame:>18} {asked:>14} frames {ready:>16} frames")
    worst = max((asked for _, asked, _ in rows), default=None)
    print(f"worst: {worst} frames = {worst / repetition:.2f} repetitions" if rows else "no crossfade")


if __name__ == "__main__":
    main()
