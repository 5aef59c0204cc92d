"""`lofid library list|show|prune|preview|add`: the loops kept on disk."""

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


def _add_client(args):
    """The daemon that takes the loop: the one on --socket (which must answer), else
    the one on the default socket when it answers; None: straight into the library
    folder (always so with --library and no --socket)."""
    from lofid.control.client import Client, NoDaemon
    from lofid.control.server import default_socket_path
    # Reading a long file can take a while; the daemon answers when it is kept.
    timeout = 600.0
    if args.socket:
        return Client(args.socket, timeout=timeout)
    if args.library is not None:
        return None
    try:
        return Client(default_socket_path(), timeout=timeout)
    except NoDaemon:
        return None


def _say_added(answer: dict, where: str) -> None:
    m = answer["metrics"]
    seam = float("inf") if m["seam_ratio"] is None else m["seam_ratio"]
    w, h = answer["size"]
    print(f"{answer['loop']}  [{answer['scene']}]  {where}")
    print(f"{answer['frames']} frames {w}x{h} @ {answer['fps']:g} fps, seam ratio {seam:.3f}, "
          f"motion {m['motion']:.3f}, flicker {m['flicker']:.3f}")


def cmd_library_add(args) -> int:
    import os
    import sys

    from lofid.loop_file import check_fps, is_sequence, read_loop
    path = os.path.abspath(os.path.expanduser(args.file))
    if args.fps is not None:
        check_fps(args.fps, "--fps")
    if not is_sequence(path) and not os.path.lexists(path):
        raise BadInput(f"{args.file!r} does not exist")
    if not args.prompt.strip():
        raise BadInput("--prompt is empty: say what the loop shows (e.g. 'rainy night, cafe')")
    client = _add_client(args)
    if client is not None:
        options = {"play_now": bool(args.play)}
        if args.fps is not None:
            options["fps"] = args.fps
        try:
            answer = client.call("library.add", path, args.prompt, options)
        finally:
            client.close()
        play = answer.get("play") or {}
        _say_added(answer, "playing now" if play else f"kept by the lofid on {client.where}")
        return 0
    lib = _library(args)
    loop = read_loop(path, args.prompt, fps=args.fps)
    key = lib.put(loop)
    _say_added({"loop": key, "scene": loop.spec.label(), "frames": loop.n_frames,
                "size": [loop.width, loop.height], "fps": loop.fps,
                "metrics": {k: None if v == float("inf") else v for k, v in loop.metrics.items()}},
               f"kept in {lib.root}")
    if args.play:
        print("lofid: note: no lofid answers on its socket, so nothing plays it now; "
              "it is in the library", file=sys.stderr)
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
