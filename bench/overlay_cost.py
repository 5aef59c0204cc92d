"""What text overlays cost, and how soon a new text is on the air.

    python bench/overlay_cost.py [--seconds 300] [--rotate 60] [--rounds 2] [--paced]
                                 [--latency-seconds 110] [--changes 3]

Cost: the stream of bench/stream_cost.py (1080p30 H.264 4.5 Mb/s + AAC, painted loops
of 60 frames at 10 fps from a temporary library, a new loop every --rotate seconds,
3-s crossfades, the null output as fast as it goes, or in real time with --paced),
with music (two tagged FLAC tracks of 3 minutes, looped), played without overlays and
with a minute clock and a now-playing line, one after the other, --rounds times, in
the same process. The clock reads the stream's own time (start + seconds played), so
it ticks once a stream minute as it would live. Figures: the process's CPU-seconds (all threads) per
second of stream. Target (issue): with overlays at most 1.5 times without.

Latency: a paced 1080p30 player (one loop, 180-frame repetitions) to an output that
records when each packet leaves the player; --changes times the note's text is set
at a random moment, then (14 s later) set again with now = true. Afterwards the
packets are decoded: a frame shows the new text from the first frame whose note
region differs from the same frame one repetition earlier (repeated packets decode
to identical pixels, so before the change the difference is exactly zero). The
figure is from the set call to that frame's packet going out. Targets: at most one
repetition (6 s here); with now = true at most 200 ms.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def tagged_tracks(folder: Path) -> list[Path]:
    """Two 3-minute FLAC files (a lofi track's usual length) with title and artist
    tags: soft chords."""
    import av
    paths = []
    for i, (title, artist, f0) in enumerate((("Rainy Window", "Night Owls", 220.0),
                                             ("Slow Coffee", "Paper Lanterns", 196.0))):
        path = folder / f"track{i}.flac"
        with av.open(str(path), "w") as c:
            c.metadata["title"], c.metadata["artist"] = title, artist
            s = c.add_stream("flac", rate=48000, layout="stereo")
            t = np.arange(48000 * 180) / 48000
            wave = 0.1 * (np.sin(2 * np.pi * f0 * t) + np.sin(2 * np.pi * f0 * 1.25 * t))
            samples = np.repeat(wave[None, :].astype(np.float32), 2, axis=0)
            for k in range(0, samples.shape[1], 4800):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, k:k + 4800].T.reshape(1, -1)),
                    format="flt", layout="stereo")
                frame.rate, frame.pts = 48000, k
                for p in s.encode(frame):
                    c.mux(p)
            for p in s.encode(None):
                c.mux(p)
        paths.append(path)
    return paths


def layers():
    from lofid.overlays import parse_layer
    return [parse_layer({"kind": "clock", "position": "top-right"}),
            parse_layer({"kind": "now_playing", "text": "♪ "})]


def cost(a, tmp: Path, library, spec, loop_size, tracks) -> list[tuple[str, float, dict]]:
    from lofid.audio import AudioTrack
    from lofid.director import Director, DirectorSettings
    from lofid.outputs.null import NullOutput
    from lofid.overlays.board import Overlays
    from lofid.player import Player, PlayerSettings

    rows = []
    for _ in range(a.rounds):
        for with_overlays in (False, True):
            director = Director(library, spec, DirectorSettings(
                loop_size=loop_size, frames=60, fps=10.0, rotate=a.rotate, generate=False))
            # Unpaced, the player reads 300 s of music in seconds: let it wait for the decoder.
            audio = AudioTrack(tracks, max_wait=1.0, buffer_seconds=8.0)
            # Unpaced, every thread runs flat out on the same cores; paced (--paced), the
            # encodes aside share them with a player that mostly waits, as live.
            holder: dict = {}
            start = time.time()
            overlays = Overlays(layers(), (1920, 1080), audio=audio,
                                now=lambda: start + (holder["p"].seconds if holder else 0)) \
                if with_overlays else None
            player = Player(director, [NullOutput()], audio,
                            PlayerSettings(fps=Fraction(30), size=(1920, 1080),
                                           crossfade=3.0, duration=a.seconds,
                                           realtime=a.paced),
                            overlays=overlays)
            holder["p"] = player
            director.attach_clock(lambda: player.frame / 30)
            c0 = cpu_self()
            player.run()
            cpu = cpu_self() - c0
            director.stop()
            audio.close()
            rows.append(("with overlays" if with_overlays else "without", cpu, player.stats))
    return rows


def latency(a, loop) -> list[tuple[str, float, int, int]]:
    import av
    from lofid.outputs.base import Output
    from lofid.overlays.board import Overlays
    from lofid.overlays import parse_layer
    from lofid.player import Player, PlayerSettings

    class Recorder(Output):
        queue_size = 1_000_000
        wants = "packets"

        def __init__(self):
            super().__init__("recorder")
            self.video: list[tuple[float, object]] = []

        def send(self, item) -> bool:
            if getattr(item, "kind", None) == "video":
                self.video.append((time.monotonic(), item))
            return super().send(item)

        def _write(self, item) -> None:
            pass

    class One:
        def first(self):
            return loop

        def next_ready(self):
            return None

    note = parse_layer({"kind": "text", "name": "note", "text": "lofi beats to study to",
                        "position": "top-left"})
    overlays = Overlays([note], (1920, 1080))
    rec = Recorder()
    player = Player(One(), [rec], None,
                    PlayerSettings(fps=Fraction(30), size=(1920, 1080), realtime=True,
                                   duration=a.latency_seconds), overlays=overlays)
    sets: list[tuple[str, float]] = []

    def drive():
        rng = random.Random(1)
        while player.frame < 240:              # more than a repetition to compare with
            time.sleep(0.05)
        for i in range(a.changes):
            time.sleep(rng.uniform(0, 6))
            sets.append(("next repetition", time.monotonic()))
            overlays.set({"name": "note", "text": f"keyframe change {i}"})
            # Each change settles (its live or fade segment over, the cached packets
            # back) for more than a repetition before the next, so the frames a
            # repetition before it are the old text's cached packets.
            time.sleep(14)
            sets.append(("now = true", time.monotonic()))
            overlays.set({"name": "note", "text": f"change at once {i}"}, now=True)
            time.sleep(14)

    threading.Thread(target=drive, daemon=True).start()
    player.run()

    # Decode every packet in order; keep the note's region of each frame.
    tile = overlays.look().tiles()["note"]
    x0, y0, x1, y1 = tile.box
    x1 += 400                                  # room for the longer texts
    codec = av.CodecContext.create("h264", "r")
    sent = {}                                  # frame (pts) -> when its packet went out
    regions = {}
    for t, p in sorted(rec.video, key=lambda tp: tp[1].dts):
        sent[p.pts] = t
        packet = av.Packet(p.data)
        packet.pts = packet.dts = p.pts
        for frame in codec.decode(packet):
            regions[frame.pts] = frame.to_ndarray(format="gray")[y0:y1, x0:x1].copy()
    for frame in codec.decode(None):
        regions[frame.pts] = frame.to_ndarray(format="gray")[y0:y1, x0:x1].copy()
    first_pts = min(sent)
    times = [sent[first_pts + i] for i in range(len(regions))]
    regions = [regions[first_pts + i] for i in range(len(regions))]
    length = 180
    out = []
    for how, t_set in sets:
        at = next(n for n in range(len(times)) if times[n] >= t_set)
        # Frame n against the same frame of the last repetition before the change.
        first = next((n for n in range(at, len(regions)) if not np.array_equal(
            regions[n], regions[n - length * ((n - at) // length + 1)])), None)
        if first is None:
            out.append((how, float("nan"), -1, -1))
            continue
        out.append((how, times[first] - t_set, first - at, first))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--rotate", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--loops", type=int, default=4)
    ap.add_argument("--latency-seconds", type=float, default=110.0,
                    help="seconds of the paced run (0: no latency measure)")
    ap.add_argument("--changes", type=int, default=3)
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--paced", action="store_true",
                    help="play the cost runs in real time, as a live stream (slow)")
    a = ap.parse_args()

    from lofid.generators import get
    from lofid.library import Library
    from lofid.scene import parse

    tmp = Path(tempfile.mkdtemp())
    library = Library(tmp / "library")
    spec = parse("rainy night, coffee shop")
    paint = get("procedural")
    loop_size = (1280, 720)
    loops = [paint(spec, seed, loop_size, 60, 10.0) for seed in range(1, a.loops + 1)]
    for loop in loops:
        library.put(loop)
    tracks = tagged_tracks(tmp)

    if not a.skip_cost:
        rows = cost(a, tmp, library, spec, loop_size, tracks)
        print(f"{a.seconds:g} s of 1920x1080@30 stream each{' in real time' if a.paced else ''}, "
              f"new loop every {a.rotate:g} s, crossfade 3 s, music; overlays: a minute clock "
              f"and a now-playing line")
        print(f"{'run':<16} {'CPU s':>7} {'CPU s per stream s':>19} {'encodes':>8} "
              f"{'text changes':>13}")
        for name, cpu, stats in rows:
            print(f"{name:<16} {cpu:7.2f} {cpu / a.seconds:19.4f} {stats['encodes']:8d} "
                  f"{stats['overlay_changes']:13d}")
        plain = sum(c for n, c, _ in rows if n == "without")
        shown = sum(c for n, c, _ in rows if n != "without")
        print(f"with / without overlays: {shown / plain:.2f}x (target at most 1.5x)")

    if a.latency_seconds <= 0:
        return
    print("\nlatency, 1920x1080@30 paced, 180-frame repetitions:")
    print(f"{'change':<16} {'set -> on the air':>18} {'frames':>7} {'at frame':>9}")
    for how, seconds, frames, at in latency(a, loops[0]):
        print(f"{how:<16} {seconds * 1000:15.0f} ms {frames:7d} {at:9d}")


if __name__ == "__main__":
    main()
