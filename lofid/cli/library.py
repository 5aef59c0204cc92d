"""`lofid library list|show|prune|preview`: the loops kept on disk."""

from __future__ import annotations

from pathlib import Path

from .common import BadInput, _library, parse_byte_size

def _format_entry(e: dict) -> str:
    spec = e.get("spec", {})
    size = e.get("params", {}).get("size", ["?", "?"])
    seam = e.get("metrics", {}).get("seam_ratio")
    seam = float("inf") if seam is None else seam   # stored as null when infinite
    return (f"{e['key']}  {spec.get('scene', '?'):<15} {spec.get('weather', ''):<6} "
            f"{spec.get('time_of_day', ''):<11} {e.get('generator', '?'):<11} "
            f"{size[0]}x{size[1]} {e.get('n_frames', '?')}f  seam {seam:.3f}"
            f"  {e.get('bytes', 0) / 1e6:.1f} MB")


def cmd_library_list(args) -> int:
    import json
    from lofid.scene import SCENES
    if args.scene is not None and args.scene not in SCENES:
        raise BadInput(f"--scene {args.scene!r} is not a scene: expected one of {', '.join(SCENES)}")
    lib = _library(args)
    entries = lib.entries(scene=args.scene)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        print(_format_entry(e))
    print(f"{len(entries)} loop(s), {sum(e.get('bytes', 0) for e in entries) / 1e6:.1f} MB"
          f" in {lib.root}")
    return 0


def _find_key(lib, key: str) -> str:
    """A full key, or a unique prefix of one, as git takes commit ids."""
    matches = [e["key"] for e in lib.entries() if e["key"].startswith(key)]
    if len(matches) != 1:
        raise BadInput(f"no loop {key!r} in the library" if not matches
                       else f"{key!r} is ambiguous: {', '.join(matches[:5])}")
    return matches[0]


def cmd_library_show(args) -> int:
    import json
    lib = _library(args)
    print(json.dumps(lib.meta(_find_key(lib, args.key)), indent=2))
    return 0


def cmd_library_prune(args) -> int:
    lib = _library(args)
    cap = parse_byte_size(args.max_size)
    removed = lib.prune(cap)
    print(f"removed {len(removed)} loop(s); {lib.total_bytes() / 1e6:.1f} MB left")
    return 0


def cmd_library_preview(args) -> int:
    import numpy as np
    from lofid.export import contact_sheet, write_png
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise BadInput(f"-o {args.output!r}: a preview is written as .png")
    if args.count < 1:
        raise BadInput(f"--count {args.count}: expected 1 or more")
    if args.columns is not None and args.columns < 1:
        raise BadInput(f"--columns {args.columns}: expected 1 or more")
    lib = _library(args)
    loop = lib.get(_find_key(lib, args.key))
    # Evenly spaced frames show the whole motion without a sheet of near-copies.
    picks = np.unique(np.linspace(0, loop.n_frames - 1, min(args.count, loop.n_frames)).round().astype(int))
    write_png(contact_sheet(loop.frames[picks], columns=args.columns), out)
    print(out)
    return 0


def cmd_library_fill(args) -> int:
    from lofid.settings.run import ConfigError, default_path, load
    from .batch import fill_library
    from .generate import _batch_shape
    config = args.config or (default_path() if default_path().exists() else None)
    try:
        cfg = load(config, {"ray_address": args.ray} if args.ray else {})
    except ConfigError as e:
        raise BadInput(str(e)) from None
    from lofid.settings import size_of
    size = size_of(cfg.loop_size, "loop_size") if cfg.loop_size else None
    return fill_library(args, cfg, *_batch_shape(cfg, size, cfg.loop_frames, cfg.loop_fps or 12.0))
