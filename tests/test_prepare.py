"""`lofid prepare images` and `lofid prepare clips` on pictures and videos made here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lofid.cli import main


def picture(seed: int, size: tuple[int, int]) -> Image.Image:
    """A picture of overlapping coloured discs: each seed a different one."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(w // 8, w // 2)), y0 + int(rng.integers(h // 8, h // 2))
        draw.ellipse([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def report_of(dst: Path) -> dict:
    return json.loads((dst / "report.json").read_text(encoding="utf-8"))


def by_file(report: dict) -> dict[str, dict]:
    return {item["file"]: item for item in report["items"]}


def lofid(*args: str) -> subprocess.CompletedProcess:
    """The `lofid` command, as a user runs it."""
    command = Path(sys.executable).with_name("lofid")
    return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=120)


def test_captions_say_what_the_text_says_and_nothing_more():
    from lofid.training.captions import caption, scene_tags

    assert scene_tags("coffee shop rain night 03") == \
        ["coffee shop", "rain", "night", "steam", "flicker"]
    # A place named by a thing in it is still named; the scene's time comes with it.
    assert scene_tags("desk 0001")[:2] == ["study room", "day"]
    # Nothing named: no default scene, time or figure is made up.
    assert scene_tags("IMG 0001 jazz") == []
    assert scene_tags("rain night") == ["rain", "night", "flicker"]
    assert scene_tags("steam from a cup") == ["steam"]
    assert caption("IMG 0001", trigger="mine") == \
        "mine, lofi, cozy, anime style, warm lighting, soft colors"


# --- images -----------------------------------------------------------------------------

@pytest.fixture
def pictures(tmp_path) -> Path:
    src = tmp_path / "pictures"
    (src / "winter").mkdir(parents=True)
    picture(1, (600, 520)).save(src / "coffee_shop_rain_night.png")
    picture(1, (600, 520)).save(src / "copy.png")                      # the same picture
    picture(2, (700, 600)).save(src / "winter" / "bedroom-snow.jpg", quality=95)
    picture(3, (600, 520)).save(src / "a_library.png")
    # The same picture larger and re-saved as JPEG: kept instead of the smaller one.
    picture(3, (600, 520)).resize((900, 780), Image.Resampling.BICUBIC).save(
        src / "z_library_large.jpg", quality=80)
    picture(4, (300, 200)).save(src / "tiny_rooftop.png")
    picture(5, (640, 640)).save(src / "IMG_0001.webp")
    (src / "IMG_0001.txt").write_text("snowy balcony at sunset, jazz\n", encoding="utf-8")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 20)
    return src


def test_prepare_images_keeps_rejects_crops_and_captions(pictures, tmp_path, capsys):
    dst = tmp_path / "data"
    assert main(["prepare", "images", str(pictures), str(dst), "--resolution", "64"]) == 0
    out = capsys.readouterr().out
    assert "kept 4 pictures, rejected 4" in out

    report = report_of(dst)
    assert (report["kept"], report["rejected"]) == (4, 4)
    assert report["reasons"] == {"unreadable": 1, "too small": 1, "near-duplicate": 2}
    items = by_file(report)
    assert set(items) == {"coffee_shop_rain_night.png", "copy.png", "winter/bedroom-snow.jpg",
                          "a_library.png", "z_library_large.jpg", "tiny_rooftop.png",
                          "IMG_0001.webp", "broken.jpg"}
    assert items["tiny_rooftop.png"]["reason"] == "too small: 300x200 < 512"
    assert items["broken.jpg"]["reason"].startswith("unreadable")
    assert items["copy.png"]["reason"] == \
        "near-duplicate of coffee_shop_rain_night.png (distance 0)"
    assert items["a_library.png"]["reason"].startswith("near-duplicate of z_library_large.jpg")
    kept = {f for f, item in items.items() if item["kept"]}
    assert kept == {"coffee_shop_rain_night.png", "winter/bedroom-snow.jpg",
                    "z_library_large.jpg", "IMG_0001.webp"}

    # Exactly the kept pictures, as 64x64 RGB PNGs, each with its caption beside it.
    assert sorted(p.name for p in dst.glob("*.png")) == [
        "IMG_0001.png", "coffee_shop_rain_night.png", "winter__bedroom-snow.png",
        "z_library_large.png"]
    for png in dst.glob("*.png"):
        with Image.open(png) as image:
            assert image.size == (64, 64) and image.mode == "RGB"
        assert png.with_suffix(".txt").read_text(encoding="utf-8").startswith("lofivision, ")

    caption = (dst / "coffee_shop_rain_night.txt").read_text(encoding="utf-8").strip()
    assert caption.startswith("lofivision, coffee shop, rain, night, ")
    assert caption.endswith("lofi, cozy, anime style, warm lighting, soft colors")
    bedroom = (dst / "winter__bedroom-snow.txt").read_text(encoding="utf-8")
    assert "bedroom night" in bedroom and "snow" in bedroom
    # The caption file beside IMG_0001 says more than its name; "jazz" is not a tag.
    balcony = (dst / "IMG_0001.txt").read_text(encoding="utf-8")
    assert "balcony sunset" in balcony and "snow" in balcony and "jazz" not in balcony
    # A name that says nothing gets no made-up scene.
    assert "study room" not in (dst / "z_library_large.txt").read_text(encoding="utf-8")

    # The crop is the middle of the picture, scaled down.
    source = picture(1, (600, 520)).crop((40, 0, 560, 520)).resize((64, 64),
                                                                   Image.Resampling.BOX)
    with Image.open(dst / "coffee_shop_rain_night.png") as made:
        diff = np.abs(np.asarray(made, np.int16) - np.asarray(source, np.int16))
    assert diff.mean() < 6


def test_prepare_images_buckets_follow_the_shape(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    picture(1, (1024, 576)).save(src / "wide.png")
    picture(2, (576, 1024)).save(src / "tall.png")
    picture(3, (600, 600)).save(src / "square.png")
    assert main(["prepare", "images", str(src), str(dst), "--resolution", "256",
                 "--min-size", "256", "--buckets"]) == 0
    sizes = {}
    for name in ("wide", "tall", "square"):
        with Image.open(dst / f"{name}.png") as image:
            sizes[name] = image.size
    for w, h in sizes.values():
        assert w % 64 == 0 and h % 64 == 0
        assert 0.75 <= w * h / 256 ** 2 <= 1.25
    assert sizes["square"] == (256, 256)
    assert sizes["wide"][0] / sizes["wide"][1] > 1.5
    assert sizes["tall"] == sizes["wide"][::-1]
    reported = {i["file"]: (i["width"], i["height"]) for i in report_of(dst)["items"]}
    assert reported == {f"{name}.png": size for name, size in sizes.items()}


@pytest.mark.slow
def test_prepare_images_again_replaces_its_output_and_keeps_others_out(pictures, tmp_path):
    dst = tmp_path / "data"
    assert main(["prepare", "images", str(pictures), str(dst), "--resolution", "64",
                 "--trigger", "mylofi"]) == 0
    (pictures / "coffee_shop_rain_night.png").unlink()
    assert main(["prepare", "images", str(pictures), str(dst), "--resolution", "64",
                 "--trigger", "mylofi"]) == 0
    # Nothing stale is left to train on; the duplicate now stands for the picture.
    assert not (dst / "coffee_shop_rain_night.png").exists()
    assert not (dst / "coffee_shop_rain_night.txt").exists()
    assert (dst / "copy.png").exists()
    assert (dst / "copy.txt").read_text(encoding="utf-8").startswith("mylofi, ")

    other = tmp_path / "holiday"
    other.mkdir()
    (other / "photo.png").write_bytes(b"mine")
    r = lofid("prepare", "images", str(pictures), str(other))
    assert r.returncode == 2
    assert "holiday" in r.stderr and "not empty" in r.stderr
    assert (other / "photo.png").read_bytes() == b"mine"


@pytest.mark.slow
def test_prepare_images_bad_input_exits_2(pictures, tmp_path, capsys):
    dst = tmp_path / "out"
    cases = [
        ([str(tmp_path / "nowhere"), str(dst)], "does not exist"),
        ([str(pictures / "copy.png"), str(dst)], "is not a folder"),
        ([str(pictures), str(pictures / "out")], "inside SRC"),
        ([str(pictures), str(dst), "--resolution", "65"], "multiple of 8"),
        ([str(pictures), str(dst), "--resolution", "big"], "is not N or WIDTHxHEIGHT"),
        ([str(pictures), str(dst), "--dedupe-distance", "99"], "--dedupe-distance 99"),
        ([str(pictures), str(dst), "--trigger", "a, b"], "--trigger"),
        ([str(tmp_path), str(dst)], None),     # holds only the picture folder: fine
    ]
    for args, message in cases[:-1]:
        assert main(["prepare", "images", *args]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not dst.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no pictures here")
    assert main(["prepare", "images", str(empty), str(dst)]) == 2
    assert "holds no pictures" in capsys.readouterr().err

    # Every picture rejected: the report says why, and the exit code says it failed.
    small = tmp_path / "small"
    small.mkdir()
    picture(1, (300, 200)).save(small / "a.png")
    r = lofid("prepare", "images", str(small), str(dst))
    assert r.returncode == 2
    assert "no picture" in r.stderr and "1 too small" in r.stderr
    assert report_of(dst)["items"][0]["reason"] == "too small: 300x200 < 512"


# --- clips ------------------------------------------------------------------------------

SOURCE_FPS = 24
# (kind, seconds): cuts at 3.0, 8.5 and 11.5 s.
SHOTS = (("warm", 3.0), ("cool", 5.5), ("static", 3.0), ("dark", 3.0))
CUTS = (3.0, 8.5, 11.5)


def shot_frames(kind: str, seconds: float, size=(160, 120)):
    w, h = size
    n = round(seconds * SOURCE_FPS)
    yy, xx = np.mgrid[0:h, 0:w]
    base = {"warm": (200, 140, 90), "cool": (70, 120, 190), "static": (150, 170, 120),
            "dark": (6, 6, 10)}[kind]
    for i in range(n):
        image = np.empty((h, w, 3), np.uint8)
        image[:] = base
        if kind == "static":
            image[h // 4:h // 2, w // 4:w // 2] = (40, 60, 30)
        else:
            # A disc crossing the picture; dark shots have a faint one.
            cx, cy = w * 0.2 + i * w * 0.6 / n, h / 2 + h * 0.2 * np.sin(i / 5)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (h / 5) ** 2
            image[disc] = (250, 250, 240) if kind != "dark" else (14, 14, 16)
            if kind == "cool":
                image[((xx + 3 * i) // 8) % 2 == 0] //= 2
        yield image


def write_video(path: Path, shots, size=(160, 120), codec="libx264"):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=SOURCE_FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        index = 0
        for kind, seconds in shots:
            for image in shot_frames(kind, seconds, size):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                index += 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def read_clip(path: Path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        rate = stream.average_rate
        assert float(stream.duration * stream.time_base) == pytest.approx(len(frames) / rate)
    return rate, [f.time for f in frames], np.stack([f.to_ndarray(format="rgb24")
                                                     for f in frames])


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("videos")
    write_video(src / "rainy_window-night.mp4", SHOTS)
    (src / "more").mkdir()
    write_video(src / "more" / "brief.mkv", [("warm", 1.5)], codec="mpeg4")
    (src / "notes.md").write_text("where the clips come from\n")
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00garbage" * 50)
    return src


def test_prepare_clips_cuts_trims_filters_and_writes_a_manifest(videos, tmp_path, capsys):
    dst = tmp_path / "clips"
    assert main(["prepare", "clips", str(videos), str(dst), "--resolution", "96x64"]) == 0
    assert "kept 3 clips from 2 videos" in capsys.readouterr().out

    manifest = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    assert [(e["shot"], e["start"], e["end"]) for e in manifest] == \
        [(1, 0.0, 2.5), (2, 3.0, 5.5), (2, 5.5, 8.0)]
    for entry in manifest:
        assert entry["source"] == "rainy_window-night.mp4"
        assert (entry["frames"], entry["fps"], entry["width"], entry["height"]) == \
            (20, 8, 96, 64)
        # No clip spans a cut.
        assert not any(entry["start"] < cut < entry["end"] for cut in CUTS)
        assert entry["caption"].startswith("lofivision, rainy window, rain, night")
        assert (dst / entry["file"]).with_suffix(".txt").read_text(
            encoding="utf-8").strip() == entry["caption"]

        rate, times, frames = read_clip(dst / entry["file"])
        assert rate == 8 and len(frames) == 20 and frames.shape[1:] == (64, 96, 3)
        assert times == pytest.approx([i / 8 for i in range(20)])
        # Every frame is from the one shot: warm pictures are red, cool ones blue.
        red, blue = frames[..., 0].mean(axis=(1, 2)), frames[..., 2].mean(axis=(1, 2))
        assert (red > blue).all() if entry["shot"] == 1 else (blue > red).all()
        # It moves: the disc is somewhere else in the last frame.
        assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 3

    report = report_of(dst)
    assert report["kept"] == 3
    assert report["reasons"] == {"too short": 5, "static": 1, "too dark": 1,
                                 "unreadable": 1, "not a video": 1}
    rejected = [i for i in report["items"] if not i["kept"]]
    why = {(i["file"], i.get("shot"), i["why"]) for i in rejected}
    assert ("rainy_window-night.mp4", 3, "static") in why
    assert ("rainy_window-night.mp4", 4, "too dark") in why
    assert ("more/brief.mkv", 1, "too short") in why
    assert ("notes.md", None, "not a video") in why
    assert ("broken.mp4", None, "unreadable") in why
    brief = next(i for i in rejected if i["file"] == "more/brief.mkv")
    assert brief["reason"] == "too short: 1.50 s (0.00-1.50 s, shot 1) < 2.5 s"


@pytest.mark.slow
def test_prepare_clips_fps_and_seconds_set_the_frames(videos, tmp_path):
    # What an interrupted earlier run leaves: its report, a clip it did not list yet.
    dst = tmp_path / "clips"
    dst.mkdir()
    (dst / "report.json").write_text('{"command": "prepare clips", "items": []}')
    (dst / "old-007.mp4").write_bytes(b"half a clip")
    (dst / "old-007.txt").write_text("old caption")
    (dst / "notes.odt").write_bytes(b"not ours")
    r = lofid("prepare", "clips", str(videos), str(dst), "--resolution", "64",
              "--fps", "12", "--seconds", "2", "--trigger", "rainlora")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    # Shot 1 (3 s) gives one 2-s clip, shot 2 (5.5 s) two; brief.mkv (1.5 s) none.
    assert [(e["shot"], e["start"]) for e in manifest] == [(1, 0.0), (2, 3.0), (2, 5.0)]
    rate, times, frames = read_clip(dst / manifest[1]["file"])
    assert rate == 12 and frames.shape == (24, 64, 64, 3)
    assert manifest[1]["caption"].startswith("rainlora, ")
    assert not (dst / "old-007.mp4").exists() and not (dst / "old-007.txt").exists()
    assert (dst / "notes.odt").read_bytes() == b"not ours"


@pytest.mark.slow
def test_prepare_clips_bad_input_exits_2(videos, tmp_path, capsys):
    dst = tmp_path / "out"
    cases = [
        (["--seconds", "0.5"], "--seconds 0.5 is out of range"),
        (["--fps", "0"], "--fps 0.0 is out of range"),
        (["--cut-threshold", "2"], "--cut-threshold"),
        (["--resolution", "0"], "--resolution"),
    ]
    for extra, message in cases:
        assert main(["prepare", "clips", str(videos), str(dst), *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert main(["prepare", "clips", str(videos), str(videos / "more" / "out")]) == 2
    assert "inside SRC" in capsys.readouterr().err
    assert not dst.exists()

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("no video")
    r = lofid("prepare", "clips", str(notes), str(dst))
    assert r.returncode == 2 and "no clip" in r.stderr and "1 not a video" in r.stderr
    assert json.loads((dst / "manifest.json").read_text()) == []
