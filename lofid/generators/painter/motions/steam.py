"""MOTION steam: wisps rising from every cup."""

from __future__ import annotations

import numpy as np

from .common import Motion, TAU, cycles, motion_rng, palette_color, smoothstep


class Steam(Motion):
    """Steam: soft wisps rising from each cup. Wisp centres are travelling sine waves
    (whole cycles per loop) swaying sideways, under a plume that tapers and fades."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.color = palette_color(p, "steam", (0.92, 0.92, 0.9)) * 255.0
        self.plumes = []
        for ci, (cx, cy, scale) in enumerate(p.cups):
            rng = motion_rng(seed, "steam", ci)
            sc = float(scale) if scale and scale > 0 else 1.0
            ph = max(8, int(0.22 * h * sc))
            pw = max(8, int(0.09 * h * sc))
            x0 = int(round(cx - pw / 2))
            y1 = int(round(cy))
            y0 = y1 - ph
            xs = np.arange(x0, x0 + pw, dtype=np.float32)[None, :]
            u = (y1 - np.arange(y0, y1, dtype=np.float32))[:, None] / ph   # 0 at cup, 1 at top
            wisps = []
            for j in range(3):
                wisps.append(dict(
                    f=rng.uniform(0.9, 1.8),                       # curls along the plume
                    k=cycles(n, fps, rng.uniform(2.0, 3.5)),      # rising speed
                    phase=rng.uniform(0, TAU),
                    off=rng.uniform(-0.12, 0.12) * pw,
                    amp=rng.uniform(0.08, 0.16) * pw,
                    w=rng.uniform(0.7, 1.0)))
            self.plumes.append(dict(
                rect=(x0, y0, x0 + pw, y1), xs=xs - cx, u=u, pw=pw, wisps=wisps,
                env=(smoothstep(0.0, 0.15, u) * (1 - u) ** 1.6).astype(np.float32),
                sigma=(pw * (0.035 + 0.09 * u)).astype(np.float32),
                sway_k=cycles(n, fps, rng.uniform(3.0, 5.0)),
                sway_phase=rng.uniform(0, TAU),
                puff_k=cycles(n, fps, rng.uniform(1.5, 2.5)),
                puff_phase=rng.uniform(0, TAU),
                strength=0.6 * min(1.0, 0.6 + 0.4 * sc)))

    def draw(self, fb, t):
        s = (t % self.n) / self.n
        for pl in self.plumes:
            u, pw = pl["u"], pl["pw"]
            sway = 0.22 * pw * u ** 1.5 * np.sin(TAU * (pl["sway_k"] * s - 0.6 * u)
                                                  + pl["sway_phase"])
            a = np.zeros((u.shape[0], pl["xs"].shape[1]), np.float32)
            for wi in pl["wisps"]:
                c = (wi["off"] * (1 - u) + sway + wi["amp"] * (0.3 + u)
                     * np.sin(TAU * (wi["f"] * u - wi["k"] * s) + wi["phase"]))
                a += wi["w"] * np.exp(-((pl["xs"] - c) / pl["sigma"]) ** 2)
            puffs = 0.6 + 0.4 * np.sin(TAU * (2.2 * u - pl["puff_k"] * s) + pl["puff_phase"])
            a *= pl["env"] * puffs * pl["strength"]
            np.clip(a, 0, 0.8, out=a)
            reg = fb.region(*pl["rect"])
            if reg is None:
                continue
            x0, y0, x1, y1 = pl["rect"]
            ox, oy = max(0, -x0), max(0, -y0)
            aa = a[oy:oy + reg.shape[0], ox:ox + reg.shape[1], None]
            reg += aa * (self.color - reg)
