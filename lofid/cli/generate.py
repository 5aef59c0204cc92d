"""`lofid generate`: one seamless loop to a file (and the library)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .common import BadInput, _check_size, _library, parse_size

DEFAULT_SIZE = (1280, 720)
DEFAULT_FRAMES = 60
DEFAULT_FPS = 12.0



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


def _animatediff_options(cfg, here: bool = True) -> dict:
    """generate()'s keyword options from config keys (or flags of the same names).
    `here`: the weights are looked for on this machine (not for a Ray cluster's
    workers, which look for them themselves)."""
    from lofid.generators.animatediff import preset_options
    from lofid.loras import parse_lora_arg
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
    if not here:
        return options
    # Found now (file headers only), not when the first loop is made.
    from lofid import models
    models.find("checkpoint", options["model"])
    models.find("motion_adapter", options["motion_adapter"])
    for kind, key in (("lora", "loras"), ("motion_lora", "motion_loras")):
        for name, _ in options[key]:
            models.find(kind, name)
    return options


def _ray_generator(cfg, address: str | None = None):
    """The RemoteGenerator for the config's Ray keys (`address` over ray_address), not
    started, and the generator its workers run."""
    from lofid.generators.cluster import RemoteGenerator
    address = address or cfg.ray_address
    if address is None:
        raise BadInput('generator = "ray" needs ray_address (or --ray ADDRESS)')
    remote = cfg.ray_generator
    options = _animatediff_options(cfg, here=False) if remote == "animatediff" else {}
    return RemoteGenerator(address, remote, options, namespace=cfg.ray_namespace,
                           workers=cfg.ray_workers, gpus=cfg.ray_worker_gpus), remote


MAX_REPEAT = 1000


def _check_loop(name: str, size: tuple[int, int], frames: int, size_key: str,
                frames_key: str) -> None:
    """BadInput unless the generator `name` can make a loop of `frames` frames at
    `size`, within the limits on the work one loop may ask for."""
    from lofid.settings import ConfigError, check_loop_work
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
    from lofid.settings.run import load
    from lofid.settings import ConfigError
    over = {k: getattr(args, k) for k in ("model", "motion_adapter", "steps", "guidance",
                                          "scheduler", "loop_method", "preset")}
    over.update(loras=args.lora or None, motion_loras=args.motion_lora or None,
                generator=args.generator, ray_address=getattr(args, "ray", None))
    try:
        return load(args.config, over)
    except ConfigError as e:
        raise BadInput(str(e)) from None


def _batch_shape(cfg, size, frames: int, fps: float):
    """The loop shape of a batch: AnimateDiff's (at most 48 frames, sides of 8) when
    the loops are made by it and no size was given."""
    generator = cfg.ray_generator if cfg.generator == "ray" else cfg.generator
    if generator == "animatediff" and size is None:
        from lofid.generators.animatediff import loop_shape
        return (*loop_shape(DEFAULT_SIZE, frames), fps)
    return size or DEFAULT_SIZE, frames, fps


def cmd_generate(args) -> int:
    from lofid.export import EXPORT_FORMATS

    if args.ray is not None:
        args.generator = "ray"
    if args.batch is not None:
        if args.text is not None or args.output is not None:
            raise BadInput("--batch makes loops into the library: give no TEXT nor -o with it")
        if args.image is not None:
            raise BadInput("--batch takes no --image")
        from .batch import fill_library
        size = parse_size(args.size) if args.size is not None else None
        cfg = _generate_config(args)
        return fill_library(args, cfg, *_batch_shape(cfg, size, args.frames, args.fps))
    if args.text is None or args.output is None:
        raise BadInput("generate needs TEXT and -o/--output FILE (or --batch PROMPTS.txt)")
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
    if name == "ray":
        # One loop on the cluster: its workers' generator and options (no painter here).
        remote = cfg.ray_generator
        _check_loop(remote, size, args.frames, size_key, "--frames")
        options = dict(address=cfg.ray_address, remote=remote, namespace=cfg.ray_namespace,
                       workers=cfg.ray_workers, gpus=cfg.ray_worker_gpus,
                       **(_animatediff_options(cfg, here=False) if remote == "animatediff"
                          else {}))
    elif name != "animatediff" and any(getattr(args, k) not in (None, []) for k in _AD_KEYS):
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
    # What the generator cannot take raises a UserError of its own (BadArgument,
    # ModelError); any other error is a bug and keeps its traceback.
    loop = generate(spec, seed, size, args.frames, args.fps,
                    progress=_progress_bar("painting" if name == "procedural" else "denoising"),
                    **options)
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
