"""CPU time of the procedural painter: one 10-second 1280x720 loop at 12 fps per scene.

Everything is included (painting the still picture, animating 120 frames, the Loop's
metrics). The budget is 5 CPU-seconds per loop. Run: python bench/painter_speed.py
"""

from __future__ import annotations

import argparse
import time

from lofid.generators import procedural
from lofid.scene import SCENES, parse

BUDGET_S = 5.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenes", default=",".join(SCENES), help="comma-separated scene names")
    # Weather adds the most work (rain on every pane, snow, fog): measure those too.
    ap.add_argument("--texts", default="rainy window night;rainy night, coffee shop, jazz lofi;"
                    "study room, storm, night;snowy winter bedroom, christmas;foggy autumn rooftop",
                    help="semicolon-separated prompts measured after the scenes")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    print(f"procedural painter, {w}x{h}, {args.frames} frames at {args.fps:g} fps, "
          f"seed {args.seed}; budget {BUDGET_S:g} CPU-s per loop")
    print(f"{'text':<34} {'motions':<44} {'cpu_s':>6} {'wall_s':>6} {'seam':>5}  ok")
    worst = 0.0
    texts = [n.replace("_", " ") for n in args.scenes.split(",") if n]
    texts += [t for t in args.texts.split(";") if t]
    for name in texts:
        spec = parse(name)
        wall, cpu = time.perf_counter(), time.process_time()
        loop = procedural.generate(spec, args.seed, (w, h), args.frames, args.fps)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        worst = max(worst, cpu)
        print(f"{name[:34]:<34} {','.join(spec.motions):<44} {cpu:6.2f} {wall:6.2f} "
              f"{loop.metrics['seam_ratio']:5.2f}  {'yes' if cpu <= BUDGET_S else 'NO'}")
    print(f"worst {worst:.2f} CPU-s (budget {BUDGET_S:g})")


if __name__ == "__main__":
    main()
