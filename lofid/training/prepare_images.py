"""`lofid prepare images SRC DST`: a folder of pictures -> style-LoRA training data.

Walks SRC (sub-folders too) for .jpg/.jpeg/.png/.webp/.bmp files and keeps those fit
to train on:

- unreadable files are rejected ("unreadable: ..."),
- pictures whose short side is under --min-size ("too small: 300x200 < 512"),
- near-duplicates ("near-duplicate of a.png (distance 2)"): two pictures whose
  perceptual hashes (64-bit DCT hash of the grey picture) differ in at most
  --dedupe-distance bits are one picture; the one with more pixels is kept, the
  first in path order when they tie.

Each kept picture is turned upright (EXIF orientation), scaled to cover --resolution
and centre-cropped to it (with --buckets: to the aspect bucket nearest its shape).

DST then holds, and the trainers read exactly this:

    DST/<name>.png    the picture, RGB, at the resolution or its bucket's size
    DST/<name>.txt    its caption, one line (see lofid.training.captions)
    DST/report.json   every input file, kept or rejected, and why

<name> is the source's path under SRC without extension, "/" read as "__"
("rain/cafe.jpg" -> "rain__cafe"). report.json is
{"command": "prepare images", "source": SRC, "kept": N, "rejected": M,
 "reasons": {"too small": 2, ...},
 "items": [{"file": "rain/cafe.jpg", "kept": true, "output": "rain__cafe.png",
            "width": 512, "height": 512, "caption": "..."},
           {"file": "b.jpg", "kept": false, "why": "too small",
            "reason": "too small: 300x200 < 512"}, ...]}.

Running again into the same DST replaces that earlier output (its .png and .txt
files, an interrupted run's included); a DST that is not empty and holds no earlier
output of this command is refused. `lofid prepare clips` shares the folder checks,
--resolution and the report from here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lofid.training.captions import DEFAULT_TRIGGER, caption, check_trigger, text_about

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
DEFAULT_RESOLUTION = 512
DEFAULT_MIN_SIZE = 512
DEFAULT_DEDUPE_DISTANCE = 6
HASH_BITS = 64

# Width:height shapes of the aspect buckets (each also turned on its side).
BUCKET_SHAPES = ((1, 1), (5, 4), (4, 3), (3, 2), (16, 9), (2, 1))


# --- shared with prepare_clips: arguments, folders, report ----------------------------

def parse_resolution(text: str) -> tuple[int, int]:
    """--resolution: N (square) or WxH; each side a multiple of 8 from 64 to 4096."""
    from lofid.errors import UserError as BadInput

    m = re.fullmatch(r"\s*(\d+)\s*(?:[x×]\s*(\d+)\s*)?", str(text))
    if not m:
        raise BadInput(f"--resolution {text!r} is not N or WIDTHxHEIGHT "
                       f"(for example 512 or 768x512)")
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) else w
    for side in (w, h):
        # The VAE works on 8-pixel blocks; 64 is the smallest picture worth training on.
        if not 64 <= side <= 4096 or side % 8:
            raise BadInput(f"--resolution {text!r} is out of range: each side must be a "
                           f"multiple of 8 from 64 to 4096")
    return w, h


def check_folders(src: str, dst: str, command: str,
                  outputs: tuple[str, ...]) -> tuple[Path, Path]:
    """SRC must be a folder; DST must not lie inside it and must be new, empty or an
    earlier output of the same command, whose files (those ending in `outputs`, and
    report.json and manifest.json) are then removed."""
    from lofid.errors import UserError as BadInput

    src_path, dst_path = Path(src), Path(dst)
    if not src_path.exists():
        raise BadInput(f"SRC {src!r} does not exist: expected a folder of source files")
    if not src_path.is_dir():
        raise BadInput(f"SRC {src!r} is not a folder: expected a folder of source files")
    src_real, dst_real = src_path.resolve(), dst_path.resolve()
    if dst_real == src_real or src_real in dst_real.parents:
        # Its output would be read as input on the next run.
        raise BadInput(f"DST {dst!r} is inside SRC {src!r}: expected a folder outside it")
    if dst_path.exists() and not dst_path.is_dir():
        raise BadInput(f"DST {dst!r} is a file: expected a new or empty folder")
    if dst_path.is_dir() and any(dst_path.iterdir()):
        _clear_earlier_output(dst_path, command, outputs)
    return src_path, dst_path


def _clear_earlier_output(dst: Path, command: str, outputs: tuple[str, ...]) -> None:
    from lofid.errors import UserError as BadInput

    report = dst / "report.json"
    try:
        earlier = json.loads(report.read_text(encoding="utf-8"))
        ok = isinstance(earlier, dict) and earlier.get("command") == command
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise BadInput(f"DST {str(dst)!r} is not empty and holds no earlier "
                       f"'lofid {command}' output: expected a new or empty folder")
    # All of them, not only those the report lists: an interrupted run wrote some
    # that its report may not name.
    for target in dst.iterdir():
        if target.is_file() and (target.name in ("report.json", "manifest.json")
                                 or target.name.lower().endswith(outputs)):
            target.unlink()


def walk(src: Path) -> list[Path]:
    """Every file under src, sub-folders too, in path order; hidden ones left out."""
    out = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    return out


def output_name(src: Path, path: Path, taken: set[str]) -> str:
    """A file-name stem for `path`'s output in DST, unique among `taken`."""
    stem = "__".join(path.relative_to(src).with_suffix("").parts)
    stem = re.sub(r"[^\w.\-]+", "_", stem).strip("_") or "file"
    name, n = stem, 2
    while name.lower() in taken:
        name, n = f"{stem}-{n}", n + 1
    taken.add(name.lower())
    return name


@dataclass
class Report:
    """What happened to every input: kept or rejected, and why. Written as report.json."""
    command: str
    source: Path
    items: list[dict] = field(default_factory=list)

    def keep(self, file: str, **details) -> None:
        self.items.append({"file": file, "kept": True, **details})

    def reject(self, file: str, why: str, reason: str, **details) -> None:
        """why: the kind ("too small"); reason: the whole sentence, which starts with it."""
        self.items.append({"file": file, "kept": False, "why": why, "reason": reason,
                           **details})

    def counts(self) -> tuple[int, int, dict[str, int]]:
        kept = sum(1 for i in self.items if i["kept"])
        reasons: dict[str, int] = {}
        for i in self.items:
            if not i["kept"]:
                reasons[i["why"]] = reasons.get(i["why"], 0) + 1
        return kept, len(self.items) - kept, reasons

    def write(self, dst: Path) -> Path:
        kept, rejected, reasons = self.counts()
        data = {"command": self.command, "source": str(self.source), "kept": kept,
                "rejected": rejected, "reasons": reasons, "items": self.items}
        path = dst / "report.json"
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    def summary(self, noun: str) -> str:
        kept, rejected, reasons = self.counts()
        why = ", ".join(f"{n} {k}" for k, n in reasons.items())
        return f"kept {kept} {noun}, rejected {rejected}" + (f" ({why})" if why else "")


def check_number(flag: str, value, low: float, high: float):
    from lofid.errors import UserError as BadInput

    if not low <= value <= high:
        raise BadInput(f"{flag} {value} is out of range: expected {low} to {high}")
    return value


# --- the command ---------------------------------------------------------------------

def add_folder_arguments(parser, sources: str, results: str, resolution: str,
                         default) -> None:
    """SRC, DST and --resolution, as both `lofid prepare` commands take them."""
    parser.add_argument("src", metavar="SRC", help=f"folder of {sources} (sub-folders too)")
    parser.add_argument("dst", metavar="DST",
                        help=f"new or empty folder for {results} (an earlier output there "
                             "is replaced)")
    parser.add_argument("--resolution", default=str(default), metavar="N|WxH",
                        help=f"{resolution} (default {default})")


def add_arguments(parser) -> None:
    add_folder_arguments(parser, "pictures", "the training data", "size of the output pictures",
                         DEFAULT_RESOLUTION)
    parser.add_argument("--buckets", action="store_true",
                        help="crop each picture to the aspect bucket (WxH, multiples of 64, "
                             "about the resolution's area) nearest its shape instead of "
                             "to the resolution")
    parser.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, metavar="PX",
                        help=f"reject pictures whose short side is under PX "
                             f"(default {DEFAULT_MIN_SIZE})")
    parser.add_argument("--dedupe-distance", type=int, default=DEFAULT_DEDUPE_DISTANCE,
                        metavar="BITS",
                        help=f"pictures whose 64-bit perceptual hashes differ in at most "
                             f"BITS bits are duplicates; -1 keeps them all "
                             f"(default {DEFAULT_DEDUPE_DISTANCE})")
    parser.add_argument("--trigger", default=DEFAULT_TRIGGER,
                        help=f"the word that starts every caption (default {DEFAULT_TRIGGER})")


@dataclass
class _Candidate:
    path: Path
    file: str            # path under SRC, as the report names it
    width: int
    height: int
    hash: int


def run(args) -> int:
    from lofid.errors import UserError as BadInput

    resolution = parse_resolution(args.resolution)
    min_size = check_number("--min-size", args.min_size, 1, 100_000)
    distance = check_number("--dedupe-distance", args.dedupe_distance, -1, HASH_BITS)
    trigger = check_trigger(args.trigger)
    src, dst = check_folders(args.src, args.dst, "prepare images", (".png", ".txt"))
    files = [p for p in walk(src) if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise BadInput(f"SRC {args.src!r} holds no pictures: expected "
                       f"{', '.join(IMAGE_EXTENSIONS)} files in it or its sub-folders")
    dst.mkdir(parents=True, exist_ok=True)
    targets = buckets(resolution) if args.buckets else [resolution]
    report = Report("prepare images", src)
    print(f"checking {len(files)} picture{'s' if len(files) != 1 else ''} in {src}",
          flush=True)
    # Marks DST as this command's from the start, so a run after an interrupted one
    # may clear it.
    report.write(dst)

    outcome: dict[str, tuple] = {}      # file -> ("keep", candidate) | ("reject", why, reason)
    candidates = []
    for path in files:
        file = path.relative_to(src).as_posix()
        try:
            image = _open_upright(path)
        except Exception as e:          # Pillow raises many kinds for broken files
            outcome[file] = ("reject", "unreadable", f"unreadable: {_short(e)}")
            continue
        w, h = image.size
        if min(w, h) < min_size:
            outcome[file] = ("reject", "too small", f"too small: {w}x{h} < {min_size}")
            continue
        candidates.append(_Candidate(path, file, w, h, perceptual_hash(image)))

    for cand, twin, bits in _dedupe(candidates, distance):
        if twin is None:
            outcome[cand.file] = ("keep", cand)
        else:
            outcome[cand.file] = ("reject", "near-duplicate",
                                  f"near-duplicate of {twin.file} (distance {bits})")

    taken: set[str] = set()
    try:
        for path in files:
            file = path.relative_to(src).as_posix()
            result = outcome[file]
            if result[0] == "reject":
                report.reject(file, result[1], result[2])
                continue
            cand = result[1]
            name = output_name(src, path, taken)
            size = nearest_bucket(targets, cand.width, cand.height)
            crop_to(_open_upright(path), size).save(dst / f"{name}.png")
            text = caption(text_about(path), trigger)
            (dst / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
            report.keep(file, output=f"{name}.png", width=size[0], height=size[1],
                        caption=text)
    finally:
        # Also when interrupted: what was written so far is listed.
        written = report.write(dst)
    kept, _, _ = report.counts()
    print(report.summary("pictures"))
    print(f"wrote {dst}{os.sep} (report: {written})")
    if kept == 0:
        raise BadInput(f"no picture in SRC {args.src!r} was kept "
                       f"({report.summary('pictures')}); see {written}")
    return 0


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def _open_upright(path: Path):
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent parts become white, as a viewer shows them, not black.
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(base, rgba)
    return image.convert("RGB")


# --- near-duplicates ----------------------------------------------------------------

def _dct_matrix(n: int):
    import numpy as np

    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * n))


def perceptual_hash(image) -> int:
    """64-bit DCT hash: the 8x8 lowest frequencies of the 32x32 grey picture, each bit
    set where the coefficient is above their median. Scaling, re-saving as JPEG and
    small colour changes move few bits; a different picture moves about half."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX),
                      dtype=np.float64)
    d = _dct_matrix(32)
    low = (d @ grey @ d.T)[:8, :8].ravel()
    # The DC term is the mean brightness, not the picture's shape.
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def hash_distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _dedupe(candidates: list[_Candidate], distance: int):
    """Yield (candidate, kept twin or None, bits): larger pictures first, then path order."""
    kept: list[_Candidate] = []
    order = sorted(range(len(candidates)),
                   key=lambda i: (-candidates[i].width * candidates[i].height, i))
    for i in order:
        cand = candidates[i]
        twin = None
        if distance >= 0:
            near = [(hash_distance(cand.hash, k.hash), n) for n, k in enumerate(kept)]
            near = [(bits, n) for bits, n in near if bits <= distance]
            if near:
                bits, n = min(near)
                twin = kept[n]
        if twin is None:
            kept.append(cand)
            yield cand, None, 0
        else:
            yield cand, twin, bits


# --- sizes and crops ------------------------------------------------------------------

def buckets(resolution: tuple[int, int]) -> list[tuple[int, int]]:
    """The aspect buckets for a resolution: sizes in multiples of 64 whose area is near
    the resolution's, one per shape in BUCKET_SHAPES (and on its side)."""
    import math

    area = resolution[0] * resolution[1]
    out = []
    for a, b in BUCKET_SHAPES:
        for rw, rh in ((a, b), (b, a)):
            w = max(64, round(math.sqrt(area * rw / rh) / 64) * 64)
            h = max(64, round(math.sqrt(area * rh / rw) / 64) * 64)
            if (w, h) not in out:
                out.append((w, h))
    return out


def nearest_bucket(sizes: list[tuple[int, int]], width: int, height: int) -> tuple[int, int]:
    """The size whose shape is nearest width:height (the smallest crop)."""
    import math

    shape = math.log(width / height)
    return min(sizes, key=lambda s: abs(math.log(s[0] / s[1]) - shape))


def crop_to(image, size: tuple[int, int]):
    """Scale `image` to cover `size` and cut the middle out of it."""
    from PIL import Image

    w, h = image.size
    tw, th = size
    scale = max(tw / w, th / h)
    # The part of the source that becomes the output, centred.
    cw, ch = tw / scale, th / scale
    left, top = (w - cw) / 2, (h - ch) / 2
    return image.resize(size, Image.Resampling.LANCZOS, box=(left, top, left + cw, top + ch))
