"""`lofid ...`: a thin face over the rest of the package.

Only argparse is imported at module level so that `lofid --help` starts at once; each
command imports what it uses. Bad input ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from lofid.errors import LofidError, UserError

EXIT_BAD_INPUT = 2

DEFAULT_SIZE = (1280, 720)
DEFAULT_FRAMES = 60
DEFAULT_FPS = 12.0


# The name the commands here raise lofid.errors.UserError by.
BadInput = UserError


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before its error; one line is clearer.
    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


# --- argument types: each names what was wrong -------------------------------------

def _check_size(w: int, h: int, text: str | None = None) -> None:
    from lofid.settings.values import SIZE_RANGE as _SIZE_RANGE, size_in_range
    if not size_in_range(w, h):
        raise BadInput(f"--size {text or f'{w}x{h}'!r} is out of range: expected {_SIZE_RANGE}")


def parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise BadInput(f"--size {text!r} is not WIDTHxHEIGHT (for example 1280x720)") from None
    _check_size(w, h, text)
    return w, h


def parse_byte_size(text: str, flag: str = "--max-size") -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in units else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise BadInput(f"{flag} {text!r} is not a size (for example 500M or 2G)") from None
    if value < 0:
        raise BadInput(f"{flag} {text!r} is not a size: it is negative")
    if not math.isfinite(value * units[unit]):    # nan, inf, 1e400
        raise BadInput(f"{flag} {text!r} is not a size: expected a finite number "
                       f"(for example 500M or 2G)")
    return int(value * units[unit])


# --- commands ------------------------------------------------------------------------

def _library(args):
    from lofid.library import Library, LibraryError
    try:
        return Library(args.library)
    except LibraryError as e:     # --library (or $LOFID_LIBRARY) names a file, say
        raise BadInput(f"--library: {e}") from None


def _progress_bar(label: str):
    """A progress callback that draws a bar on a terminal and stays quiet otherwise."""
    if not sys.stderr.isatty():
        return None
    start = time.monotonic()

    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        elapsed = time.monotonic() - start
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total} {elapsed:4.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


# A picture may have at most this many pixels: Pillow's own decompression-bomb limit,
# which it only warns about below twice the number.
def _max_picture_pixels() -> int:
    from PIL import Image
    return Image.MAX_IMAGE_PIXELS or 89_478_485


def _read_image(path: str, size: tuple[int, int] | None):
    """The user's still as (H, W, 3) uint8 at `size` (default: its own size, even
    sides), cropped to fill it. The header is checked before any pixel is decoded."""
    import stat
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):   # a FIFO would block the read
            raise BadInput(f"--image {path!r} is not a file: expected a picture file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # checked below
            im = Image.open(path)
        with im:
            limit = _max_picture_pixels()
            if im.width * im.height > limit:
                raise BadInput(f"--image {path!r} is {im.width}x{im.height}: more than "
                               f"{limit / 1e6:.0f} megapixels, the most a picture may have")
            if size is None:
                # Even sides: the video encoders need them.
                size = (im.width - im.width % 2, im.height - im.height % 2)
                try:
                    _check_size(*size)
                except BadInput:
                    from lofid.settings.values import SIZE_RANGE
                    raise BadInput(f"--image {path!r} is {im.width}x{im.height}, and a loop "
                                   f"at its size would be outside {SIZE_RANGE}: give --size"
                                   ) from None
            im = im.convert("RGB")
            w, h = size
            scale = max(w / im.width, h / im.height)
            sw, sh = max(w, round(im.width * scale)), max(h, round(im.height * scale))
            im = im.resize((sw, sh), Image.LANCZOS)
            left, top = (sw - w) // 2, (sh - h) // 2
            im = im.crop((left, top, left + w, top + h))
            return np.asarray(im, dtype=np.uint8).copy()
    except Image.DecompressionBombError as e:
        raise BadInput(f"--image {path!r} has more pixels than a picture may have: {e}") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise BadInput(f"--image {path!r} cannot be read as a picture: {e}") from None


def _pick_generator(name: str) -> str:
    from lofid import generators
    if name == "auto":
        # AnimateDiff needs weights and a GPU; without them the painter, which can
        # always run. Looking for weights reads file headers only.
        from lofid.generators.animatediff import available
        return "animatediff" if available() else "procedural"
    if name not in generators.BACKENDS:
        raise BadInput(f"--generator {name!r} is not known: expected auto or "
                       f"{', '.join(generators.names())}")
    return name


_AD_KEYS = ("model", "motion_adapter", "lora", "motion_lora", "steps", "guidance", "scheduler",
            "loop_method", "preset")


def _animatediff_options(cfg) -> dict:
    """generate()'s keyword options from config keys (or flags of the same names)."""
    from lofid.generators.animatediff import preset_options
    from lofid.loras import parse_lora_arg
    try:
        options = preset_options(cfg.preset) if cfg.preset else {}
        for key in ("model", "motion_adapter", "steps", "guidance", "scheduler", "loop_method"):
            if getattr(cfg, key) is not None:
                options[key] = getattr(cfg, key)
        options["loras"] = [parse_lora_arg(t) for t in cfg.loras]
        options["motion_loras"] = [parse_lora_arg(t) for t in cfg.motion_loras]
        if options.get("model") is None or options.get("motion_adapter") is None:
            raise BadInput("the animatediff generator needs --model and --motion-adapter (config "
                           "keys model and motion_adapter), e.g. after `lofid models pull`: "
                           "--model dreamshaper-8 --motion-adapter animatediff-v1-5-3")
        # Found now (file headers only), not when the first loop is made.
        from lofid import models
        models.find("checkpoint", options["model"])
        models.find("motion_adapter", options["motion_adapter"])
        for kind, key in (("lora", "loras"), ("motion_lora", "motion_loras")):
            for name, _ in options[key]:
                models.find(kind, name)
    except ValueError as e:
        raise BadInput(str(e)) from None
    return options


MAX_REPEAT = 1000


def _check_loop(name: str, size: tuple[int, int], frames: int, size_key: str,
                frames_key: str) -> None:
    """BadInput unless the generator `name` can make a loop of `frames` frames at
    `size`, within the limits on the work one loop may ask for."""
    from lofid.config import ConfigError, check_loop_work
    w, h = size
    if name == "procedural":
        from lofid.generators.painter import MIN_SIZE
        if min(w, h) < MIN_SIZE:
            raise BadInput(f"{size_key} {w}x{h}: the procedural painter makes pictures of "
                           f"at least {MIN_SIZE}x{MIN_SIZE}")
    elif name == "animatediff" and (w % 8 or h % 8):
        raise BadInput(f"{size_key} {w}x{h}: AnimateDiff makes sides that are multiples of 8 "
                       f"(for example {max(8, w - w % 8)}x{max(8, h - h % 8)})")
    try:
        check_loop_work(w, h, frames, size_key, frames_key)
    except ConfigError as e:
        raise BadInput(str(e)) from None


def _generate_config(args):
    """The config file's making-loops keys under this command's flags."""
    from lofid.config import ConfigError, load
    over = {k: getattr(args, k) for k in ("model", "motion_adapter", "steps", "guidance",
                                          "scheduler", "loop_method", "preset")}
    over.update(loras=args.lora or None, motion_loras=args.motion_lora or None,
                generator=args.generator)
    try:
        return load(args.config, over)
    except ConfigError as e:
        raise BadInput(str(e)) from None


def cmd_generate(args) -> int:
    from lofid.export import EXPORT_FORMATS

    out = Path(args.output)
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise BadInput(f"-o {args.output!r}: cannot write {out.suffix or 'a file without extension'}; "
                       f"expected one of {', '.join(EXPORT_FORMATS)}")
    if not out.parent.exists():
        raise BadInput(f"-o {args.output!r}: folder {str(out.parent)!r} does not exist")
    if args.frames < 2:
        raise BadInput(f"--frames {args.frames}: a loop needs at least 2 frames")
    if not 1 <= args.fps <= 60:
        raise BadInput(f"--fps {args.fps:g}: expected 1..60 (lofi loops use 8-15)")
    if not 1 <= args.repeat <= MAX_REPEAT:
        raise BadInput(f"--repeat {args.repeat}: expected 1..{MAX_REPEAT}")
    size = parse_size(args.size) if args.size is not None else None
    if size is not None and out.suffix.lower() != ".gif" and (size[0] % 2 or size[1] % 2):
        # Their colour is stored at half size; padding the picture would change --size.
        raise BadInput(f"--size {args.size!r}: {out.suffix} needs even sides, for example "
                       f"{size[0] - size[0] % 2}x{size[1] - size[1] % 2} (.gif takes any size)")
    image = _read_image(args.image, size) if args.image else None
    size_key = "--size"
    if size is None:
        size = (image.shape[1], image.shape[0]) if image is not None else DEFAULT_SIZE
        size_key = f"--image {args.image!r} (its size)" if image is not None else size_key
    cfg = _generate_config(args)
    name = _pick_generator(cfg.generator)
    _check_loop(name, size, args.frames, size_key, "--frames")
    if cfg.generator == "auto":
        print(f"generator: {name} (auto)", file=sys.stderr)
    options = _animatediff_options(cfg) if name == "animatediff" else {}
    if name != "animatediff" and any(getattr(args, k) not in (None, []) for k in _AD_KEYS):
        raise BadInput(f"--{next(k for k in _AD_KEYS if getattr(args, k) not in (None, [])).replace('_', '-')} "
                       f"is an AnimateDiff option; the {name} generator does not take it")

    from lofid import generators
    from lofid.export import export
    from lofid.scene import parse

    spec = parse(args.text)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    generate = generators.get(name)
    t0 = time.monotonic()
    if image is not None:
        if name != "procedural":
            raise BadInput("--image is animated by the procedural generator only")
        options["image"] = image
    try:
        loop = generate(spec, seed, size, args.frames, args.fps,
                        progress=_progress_bar("painting" if name == "procedural" else "denoising"),
                        **options)
    except ValueError as e:   # a model that is not what it should be, a size it cannot make
        raise BadInput(str(e)) from None
    painted = time.monotonic() - t0
    export(loop, out, repeat=args.repeat, progress=_progress_bar("encoding"))
    total = time.monotonic() - t0

    key = None
    if not args.no_library:
        from lofid.library import LibraryError
        try:
            key = _library(args).put(loop)
        except (LibraryError, OSError) as e:
            # The file is written; a library that cannot take the loop is worth a
            # warning, not a failed command.
            print(f"lofid: warning: the loop was not kept in the library: {e}", file=sys.stderr)
    print(f"{out}  [{spec.label()}]  seed {seed}")
    print(f"{loop.n_frames} frames {loop.width}x{loop.height} @ {loop.fps:g} fps"
          f"{f' x{args.repeat}' if args.repeat > 1 else ''}, "
          f"seam ratio {loop.metrics['seam_ratio']:.3f}, "
          f"generated in {painted:.1f}s, {total:.1f}s in all"
          + (f"; library key {key}" if key else ""))
    return 0


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


def _loop_size(out_w: int, out_h: int) -> tuple[int, int]:
    """Loops are painted at the output size, at most 1280 wide: the player scales them up,
    and painting (and storing) at 1080p would cost twice as much for little gain."""
    from lofid.generators.painter import MIN_SIZE   # the painter's smallest picture
    scale = min(1.0, 1280 / out_w)
    return (max(MIN_SIZE, round(out_w * scale / 2) * 2),
            max(MIN_SIZE, round(out_h * scale / 2) * 2))


def _loop_maker(cfg, size: tuple[int, int]):
    """How `lofid run` makes loops: the generator the config names (or the one `auto`
    picks) and the loop shape it can make for an output of `size`."""
    from lofid import generators
    from lofid.config import size_of
    from lofid.daemon.app import LoopMaker
    name = _pick_generator(cfg.generator)
    generate = generators.get(name)
    loop_size, loop_frames = _loop_size(*size), cfg.loop_frames
    if name == "animatediff":
        import functools

        from lofid.generators.animatediff import loop_shape
        generate = functools.partial(generate, **_animatediff_options(cfg))
        loop_size, loop_frames = loop_shape(size, loop_frames)
    if cfg.loop_size:
        loop_size = size_of(cfg.loop_size, "loop_size")
    _check_loop(name, loop_size, loop_frames, "loop_size", "loop_frames")
    return LoopMaker(name, generate, loop_size, loop_frames, auto=cfg.generator == "auto")


def cmd_run(args) -> int:
    from lofid.daemon.app import Daemon
    from lofid.settings.run import ConfigError, default_path, load, overrides_from_args, size_of

    overrides = overrides_from_args(args)
    config = args.config or (default_path() if default_path().exists() else None)
    try:
        cfg = load(config, overrides)
        size = size_of(cfg.size)
    except ConfigError as e:
        raise BadInput(str(e)) from None
    # Everything the user gave is checked before any output opens or any loop is made.
    maker = _loop_maker(cfg, size)
    return Daemon(cfg, maker, config_path=config, overrides=overrides).run()


def _ctl_client(args):
    """A client of the daemon the ctl arguments name: --tcp (with a token from
    --token-file or $LOFID_TOKEN), else the Unix socket."""
    from lofid.config import ConfigError, address_of, read_token
    from lofid.ctl import Client
    from lofid.rpc import default_socket_path
    if args.tcp is None:
        if args.token_file:
            raise BadInput("--token-file goes with --tcp HOST:PORT; the Unix socket needs no token")
        return Client(args.socket or default_socket_path())
    if args.socket:
        raise BadInput("--socket and --tcp name two ways in; give one")
    try:
        address = address_of(args.tcp, "--tcp")
        if args.token_file:
            token = read_token(args.token_file, "--token-file")
        elif os.environ.get("LOFID_TOKEN"):
            token = os.environ["LOFID_TOKEN"].strip()
        else:
            raise ConfigError("--tcp needs the daemon's token: --token-file FILE, or $LOFID_TOKEN")
    except ConfigError as e:
        raise BadInput(str(e)) from None
    return Client(tcp=address, token=token)


# `lofid ctl ACTION ...` -> the control method it calls
_CTL_METHODS = {"status": "status", "scene": "scene.set", "prompt": "audio.prompt",
                "next": "next", "pause": "pause", "resume": "resume", "reload": "config.reload",
                "stop": "shutdown", "events": "subscribe", "output": None}
_OUTPUT_USAGE = ("ctl output takes: list, add TARGET (a file, udp://, tcp://...?listen, "
                 "rtmp://..., window or null), or remove NAME")


def cmd_ctl(args) -> int:
    import json

    from lofid.ctl import ControlError, NoDaemon

    method = _CTL_METHODS[args.action]
    params: list = []
    if args.action in ("scene", "prompt"):
        if not args.text:
            raise BadInput(f"ctl {args.action} needs a text, e.g. "
                           f"lofid ctl {args.action} rainy night, coffee shop")
        params = [" ".join(args.text)]
    elif args.action == "events":
        params = [args.text or ["*"]]
    elif args.action == "output":
        words = args.text
        if words[:1] == ["list"] and len(words) == 1:
            method = "output.list"
        elif words[:1] in (["add"], ["remove"]) and len(words) == 2:
            target = words[1]
            if words[0] == "add" and target not in ("window", "null") and "://" not in target:
                target = os.path.abspath(os.path.expanduser(target))   # the daemon's cwd is not ours
            method, params = f"output.{words[0]}", [target]
        else:
            raise BadInput(f"{_OUTPUT_USAGE}; got {' '.join(words) or 'nothing'}")
    try:
        client = _ctl_client(args)
    except NoDaemon as e:
        print(f"lofid: {e}", file=sys.stderr)
        return 1
    except ControlError as e:             # TCP: the token was refused
        raise BadInput(str(e)) from None
    try:
        result = client.call(method, *params)
        if args.action == "events":
            # Until interrupted: one line per event, however long the quiet between them
            # (the timeout was for the answer to subscribe).
            client.sock.settimeout(None)
            while True:
                _, name, payload = client.receive()
                print(json.dumps({"event": name, **(payload[0] if payload else {})})
                      if args.json else f"{name}: {payload[0] if payload else ''}", flush=True)
    except ControlError as e:
        raise BadInput(str(e)) from None
    except NoDaemon as e:
        print(f"lofid: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.action == "status":
        r = result
        print(f"{r['scene']['label']}  (loop {r['loop']}){'  paused' if r['paused'] else ''}")
        print(f"clock {r['clock']['seconds']:.1f} s at {r['clock']['fps']:g} fps, "
              f"up {r['uptime_s']:.0f} s, lofid {r['version']}")
        _print_outputs(r["outputs"])
        print(f"library {r['library']['loops']} loops, {r['library']['bytes'] / 1e6:.1f} MB; "
              f"{r['generator']['ready']} ready ahead, {r['generator']['failures']} failed")
    elif args.action in ("scene", "prompt"):
        print(f"moving to {result['scene']}")
    elif args.action == "output":
        if method == "output.list":
            _print_outputs(result)
        elif method == "output.add":
            print(f"added output {result['name']}")
        else:
            print(f"removing output {result['name']} (it is finalised first)")
    elif args.action == "reload":
        if not result["ok"]:
            print(f"lofid: config not reloaded: {result['error']}", file=sys.stderr)
            return 2
        print("reloaded: " + (", ".join(result["changed"]) or "no change")
              + (f"; needs a restart: {', '.join(result['needs_restart'])}"
                 if result["needs_restart"] else ""))
    else:
        print("ok")
    return 0


def _print_outputs(outputs: list[dict]) -> None:
    for o in outputs:
        print(f"output {o['name']}: {o['state']}"
              + (f", {o['dropped']} dropped" if o["dropped"] else "")
              + (f" ({o['error']})" if o["error"] else ""))
    if not outputs:
        print("no outputs")


def cmd_config(args) -> int:
    from lofid.config import default_path, default_text
    if args.print_default:
        sys.stdout.write(default_text())
        return 0
    print(default_path())
    return 0


def cmd_service_install(args) -> int:
    """Write the user unit with the full path of this lofid, and say what to run."""
    import shutil

    from lofid import paths
    unit = (Path(__file__).resolve().parent.parent / "systemd" / "lofid.service")
    if not unit.exists():
        raise BadInput(f"the unit file is missing from this installation ({unit})")
    exe = shutil.which("lofid") or str(Path(sys.argv[0]).resolve())
    text = unit.read_text().replace("ExecStart=lofid ", f"ExecStart={exe} ")
    target = paths.systemd_user_unit()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}\nnow run:\n  systemctl --user daemon-reload\n"
          f"  systemctl --user enable --now lofid\n  journalctl --user -u lofid -f")
    return 0


# --- the parser ----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from lofid import __version__
    p = _Parser(prog="lofid", description="Cozy, subtly animated lofi scenes that never stop.")
    p.add_argument("--version", action="version", version=f"lofid {__version__}")
    p.add_argument("--library", metavar="DIR",
                   help="where loops are kept (default: $LOFID_LIBRARY or $XDG_DATA_HOME/lofid/loops)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    g = sub.add_parser("generate", help="make one seamless loop and write it to a file",
                       description="Make one seamless loop from a text such as "
                                   "'rainy night, coffee shop' and write it as MP4, WebM or GIF.")
    g.add_argument("text", help="what to show, in words (scene, weather, time of day, mood)")
    g.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.mp4, .webm or .gif")
    g.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help=f"frames in the loop (default {DEFAULT_FRAMES})")
    g.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS:g})")
    g.add_argument("--size", metavar="WxH",
                   help=f"picture size (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}, or the --image's size)")
    g.add_argument("--seed", type=int, help="seed for a reproducible loop (default: a new one)")
    g.add_argument("--generator",
                   help="auto (default: animatediff when weights and a GPU are found, else "
                        "procedural), procedural or animatediff")
    ad = g.add_argument_group("AnimateDiff")
    ad.add_argument("--model", metavar="PATH_OR_NAME", help="SD1.5 or SDXL checkpoint (folder or file)")
    ad.add_argument("--motion-adapter", metavar="PATH_OR_NAME", help="motion module / adapter")
    ad.add_argument("--lora", action="append", default=[], metavar="FILE_OR_NAME[:WEIGHT]",
                    help="a style LoRA (repeatable)")
    ad.add_argument("--motion-lora", action="append", default=[], metavar="FILE_OR_NAME[:WEIGHT]",
                    help="a motion LoRA (repeatable)")
    ad.add_argument("--steps", type=int, help="denoising steps (default 25; 4-8 few-step)")
    ad.add_argument("--guidance", type=float, help="guidance scale (default 7.5; 1-2 few-step)")
    ad.add_argument("--scheduler", help="ddim (default), euler (Lightning) or lcm (AnimateLCM)")
    ad.add_argument("--loop-method", help="circular (default), circular+blend or none")
    ad.add_argument("--preset", help="standard, lcm (AnimateLCM weights) or lightning")
    g.add_argument("--image", metavar="PICTURE", help="animate your own still picture (weather and light)")
    g.add_argument("--repeat", type=int, default=1, help="write the loop N times (default 1)")
    g.add_argument("--no-library", action="store_true", help="do not keep the loop in the library")
    g.add_argument("--config", metavar="FILE",
                   help="a TOML file whose generator and AnimateDiff keys are the defaults")
    g.set_defaults(run=cmd_generate)

    r = sub.add_parser("run", help="play loops as one endless picture to outputs",
                       description="Play loops of a scene as one endless picture: each loop repeats, "
                                   "then crossfades into the next, to files, streams and a window.")
    from lofid.settings import run as run_settings
    run_settings.add_flags(r)
    r.add_argument("--config", metavar="FILE", help="a TOML file with any of these options as keys")
    r.set_defaults(run=cmd_run)

    c = sub.add_parser("ctl", help="talk to a running lofid over its control socket",
                       description="Talk to a running lofid: status, scene TEXT, prompt TEXT, "
                                   "next, pause, resume, reload, stop, events [NAME...], "
                                   "output list|add TARGET|remove NAME.")
    c.add_argument("--socket", metavar="PATH", help="the socket (default $XDG_RUNTIME_DIR/lofid/lofid.sock)")
    c.add_argument("--tcp", metavar="HOST:PORT",
                   help="reach lofid's TCP listener (its control_tcp) instead of the socket")
    c.add_argument("--token-file", metavar="FILE",
                   help="with --tcp: the file holding the token (default: $LOFID_TOKEN)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("action", choices=tuple(_CTL_METHODS))
    c.add_argument("text", nargs="*", help="scene, prompt: what to show, in words; events: "
                   "event names (default all); output: list, add TARGET or remove NAME")
    c.set_defaults(run=cmd_ctl)

    from lofid import models_cli
    models_cli.add_parser(sub)
    from lofid.training import cli as training_cli
    training_cli.add_parsers(sub)

    cf = sub.add_parser("config", help="where the config file is, or a commented default one")
    cf.add_argument("--print-default", action="store_true",
                    help="write a config with every key at its default, commented")
    cf.set_defaults(run=cmd_config)
    sv = sub.add_parser("service", help="the systemd user service")
    svs = sv.add_subparsers(dest="service_command", metavar="ACTION", parser_class=_Parser,
                            required=True)
    svs.add_parser("install", help="write ~/.config/systemd/user/lofid.service").set_defaults(
        run=cmd_service_install)

    lib = sub.add_parser("library", help="the loops kept on disk")
    lsub = lib.add_subparsers(dest="library_command", metavar="ACTION", parser_class=_Parser,
                              required=True)
    ls_ = lsub.add_parser("list", help="list the loops")
    ls_.add_argument("--scene", help="only this scene (e.g. coffee_shop)")
    ls_.add_argument("--json", action="store_true", help="machine-readable output")
    ls_.set_defaults(run=cmd_library_list)
    sh = lsub.add_parser("show", help="a loop's metadata")
    sh.add_argument("key", help="a key or a unique prefix of one")
    sh.set_defaults(run=cmd_library_show)
    pr = lsub.add_parser("prune", help="evict the least recently played loops down to a size")
    pr.add_argument("--max-size", required=True, metavar="SIZE", help="for example 2G or 500M")
    pr.set_defaults(run=cmd_library_prune)
    pv = lsub.add_parser("preview", help="write a contact sheet PNG of a loop's frames")
    pv.add_argument("key", help="a key or a unique prefix of one")
    pv.add_argument("-o", "--output", required=True, metavar="FILE.png")
    pv.add_argument("--count", type=int, default=12, help="frames shown, evenly spaced (default 12)")
    pv.add_argument("--columns", type=int, default=None, help="frames per row")
    pv.set_defaults(run=cmd_library_preview)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "run", None) or getattr(args, "func", None)
    if command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return command(args)
    except LofidError as e:
        # The one map from error to exit code: 2 for what the user gave (UserError),
        # 1 for what the machine did (Failure); one line either way.
        print(f"lofid: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        # Not the user's input but the machine (a full disk, a folder gone).
        print(f"lofid: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lofid: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
