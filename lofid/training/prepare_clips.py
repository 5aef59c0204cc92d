"""`lofid prepare clips SRC DST`: a folder of videos -> motion-LoRA training clips.

Every file under SRC that PyAV can read as video (any container ffmpeg knows) is
decoded once, front to back:

1. Shots: a cut is a frame whose mean absolute difference from the one before
   (both grey and scaled down to 64x48, 0..1 of full scale) is over --cut-threshold
   and over twice the mean difference of the shot's last frames before it (the
   threshold stands in for that on a shot's second frame); so steady fast motion (a
   pan, rain) is not cut however large its differences. No clip spans a cut.
2. Timing: each shot is resampled to --fps from its first frame on (each output frame
   is the source frame showing at that moment) and cut into back-to-back,
   non-overlapping windows of --seconds (round(seconds * fps) frames). A shot, or the
   rest of one, shorter than a window gives no clip ("too short").
3. Picture: each frame is scaled to cover --resolution and centre-cropped to it.
4. Filters: a window is dropped as "static" when on average less than --min-motion
   of its picture changes from one frame to the next (a pixel changes when its grey
   level moves by more than 6/255), and as "too dark" when its mean luma is under
   --min-brightness (0..1).

DST then holds, and the motion trainer reads exactly this:

    DST/<name>-NNN.mp4  one clip: H.264 (yuv444p, CRF 10, BT.709), exactly `frames`
                        frames at `fps`, `width` x `height`, timestamps from 0
    DST/<name>-NNN.txt  its caption, one line (see lofid.training.captions; scene
                        tags from the source's caption file or its file name)
    DST/manifest.json   a JSON list, one entry per clip:
                        {"file": "rain-001.mp4", "caption": "...", "frames": 20,
                         "fps": 8, "width": 512, "height": 512, "source": "rain.mp4",
                         "shot": 1, "start": 2.5, "end": 5.0}
                        file is relative to DST; source to SRC; start/end in seconds
                        of the source; shot counts from 1 within the source
    DST/report.json     as for `lofid prepare images`: every input file, and every
                        piece of one (with shot, start, end, and for full windows
                        motion and brightness), kept or rejected, and why

<name> is made from the source's path as for images; NNN counts its clips from 001.

Files that are plainly not video (pictures, text, audio) and caption .txt files beside
videos are not decoded; the former are listed as "not a video".
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from lofid.media import tag_bt709
from lofid.training.captions import DEFAULT_TRIGGER, caption, check_trigger, text_about
from lofid.training.prepare_images import (IMAGE_EXTENSIONS, Report, add_folder_arguments,
                                           check_folders, check_number, crop_to, output_name,
                                           parse_resolution, walk)

DEFAULT_RESOLUTION = 512
DEFAULT_SECONDS = 2.5
DEFAULT_FPS = 8.0
DEFAULT_CUT_THRESHOLD = 0.05
DEFAULT_MIN_MOTION = 0.002
DEFAULT_MIN_BRIGHTNESS = 0.06

# Files with these endings hold no video worth decoding; an image would even open as a
# one-frame video.
NOT_VIDEO = IMAGE_EXTENSIONS + (".tif", ".tiff", ".heic", ".svg", ".txt", ".json", ".md",
                                ".csv", ".toml", ".yaml", ".yml", ".pdf", ".doc", ".docx",
                                ".mp3", ".wav", ".flac", ".aac", ".m4a", ".opus", ".zip",
                                ".safetensors", ".ckpt", ".pt", ".py")

_CUT_SIZE = (64, 48)        # the grey thumbnail the cut detector compares
_CUT_RATIO = 2              # a cut differs this many times more than the motion before it
_CUT_HISTORY = 12           # frames of that motion remembered
_MOTION_LEVEL = 6 / 255     # a grey change above this is motion, not encoder noise
_EPS = 1e-4                 # seconds: timestamps within this are the same moment


def add_arguments(parser) -> None:
    add_folder_arguments(parser, "videos", "the clips", "size of the clips, centre-cropped",
                         DEFAULT_RESOLUTION)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, metavar="S",
                        help=f"length of each clip, 1 to 10 (default {DEFAULT_SECONDS}; "
                             f"motion LoRAs train on 2-3 s)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS,
                        help=f"frames per second of the clips (default {DEFAULT_FPS:g})")
    parser.add_argument("--cut-threshold", type=float, default=DEFAULT_CUT_THRESHOLD,
                        metavar="T",
                        help=f"a scene cut is a frame that differs from the one before by "
                             f"more than T, 0 to 1 (default {DEFAULT_CUT_THRESHOLD})")
    parser.add_argument("--min-motion", type=float, default=DEFAULT_MIN_MOTION, metavar="M",
                        help=f"drop clips in which less than M of the picture moves from "
                             f"frame to frame, 0 to 1 (default {DEFAULT_MIN_MOTION})")
    parser.add_argument("--min-brightness", type=float, default=DEFAULT_MIN_BRIGHTNESS,
                        metavar="B",
                        help=f"drop clips whose mean brightness is under B, 0 to 1 "
                             f"(default {DEFAULT_MIN_BRIGHTNESS})")
    parser.add_argument("--trigger", default=DEFAULT_TRIGGER,
                        help=f"the word that starts every caption (default {DEFAULT_TRIGGER})")


@dataclass(frozen=True)
class Settings:
    size: tuple[int, int]
    fps: Fraction
    frames: int               # per clip
    cut_threshold: float
    min_motion: float
    min_brightness: float

    @property
    def seconds(self) -> float:
        return self.frames / float(self.fps)


def _settings(args) -> Settings:
    from lofid.errors import UserError as BadInput

    size = parse_resolution(args.resolution)
    seconds = check_number("--seconds", args.seconds, 1, 10)
    fps = check_number("--fps", args.fps, 1, 60)
    cut = check_number("--cut-threshold", args.cut_threshold, 0, 1)
    motion = check_number("--min-motion", args.min_motion, 0, 1)
    brightness = check_number("--min-brightness", args.min_brightness, 0, 1)
    rate = Fraction(fps).limit_denominator(1001)
    frames = round(seconds * fps)
    if frames < 2:
        raise BadInput(f"--seconds {seconds} at --fps {fps} gives {frames} frame: "
                       f"expected at least 2 frames per clip")
    return Settings(size, rate, frames, cut, motion, brightness)


def run(args) -> int:
    from lofid.errors import UserError as BadInput

    settings = _settings(args)
    trigger = check_trigger(args.trigger)
    src, dst = check_folders(args.src, args.dst, "prepare clips", (".mp4", ".txt", ".part"))
    files = _inputs(src)
    if not files:
        raise BadInput(f"SRC {args.src!r} holds no files: expected videos in it or its "
                       f"sub-folders")
    dst.mkdir(parents=True, exist_ok=True)
    report = Report("prepare clips", src)
    # Marks DST as this command's from the start, so a run after an interrupted one
    # may clear it.
    report.write(dst)

    manifest: list[dict] = []
    taken: set[str] = set()
    videos = 0
    try:
        for path in files:
            file = path.relative_to(src).as_posix()
            if path.suffix.lower() in NOT_VIDEO:
                report.reject(file, "not a video", f"not a video: a {path.suffix.lower()} file")
                continue
            name = output_name(src, path, taken)
            text = caption(text_about(path), trigger)
            before = len(manifest)
            if _prepare_video(path, file, name, text, settings, dst, report, manifest):
                videos += 1
                made = len(manifest) - before
                print(f"{file}: {made} clip{'s' if made != 1 else ''}", flush=True)
            else:
                print(f"{file}: {report.items[-1]['reason']}", flush=True)
    finally:
        # Also when interrupted: the clips written so far are listed and usable.
        (dst / "manifest.json").write_text(
            json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written = report.write(dst)
    print(report.summary(f"clips from {videos} video{'s' if videos != 1 else ''}"))
    print(f"wrote {dst}{os.sep} (manifest: {dst / 'manifest.json'}, report: {written})")
    if not manifest:
        raise BadInput(f"no clip was cut from SRC {args.src!r} "
                       f"({report.summary('clips')}); see {written}")
    return 0


def _inputs(src: Path) -> list[Path]:
    files = walk(src)
    stems = {(p.parent, p.stem) for p in files if p.suffix.lower() != ".txt"}
    # A .txt beside a video is its caption, read through text_about, not an input.
    return [p for p in files if not (p.suffix.lower() == ".txt" and (p.parent, p.stem) in stems)]


# --- one video ------------------------------------------------------------------------

@dataclass
class _Shot:
    """One shot being resampled to the clip rate and gathered into windows."""
    start: float
    settings: Settings
    slots: int = 0                      # output frames given out so far
    last: object = None                 # the source frame showing now
    last_image: object = None           # that frame, cropped (made when first used)
    window: list = field(default_factory=list)

    def slot_time(self, k: int) -> float:
        return self.start + k / float(self.settings.fps)

    def add(self, t: float, frame):
        """Take a source frame shown from time t on; yield full windows."""
        yield from self._fill_until(t)
        self.last, self.last_image = frame, None

    def end(self, t: float):
        """The shot ends at time t; yield its last full window, then the leftover
        as ("short", start, end) when there is one."""
        yield from self._fill_until(t)
        if self.window or self.slots == 0:
            start = self.slot_time(self.slots - len(self.window))
            yield "short", start, max(t, start)

    def _fill_until(self, t: float):
        while self.last is not None and self.slot_time(self.slots) < t - _EPS:
            if self.last_image is None:
                self.last_image = _cropped(self.last, self.settings.size)
            self.window.append(self.last_image)
            self.slots += 1
            if len(self.window) == self.settings.frames:
                start = self.slot_time(self.slots - self.settings.frames)
                yield "window", start, self.window
                self.window = []


def _cropped(frame, size):
    import numpy as np

    return np.asarray(crop_to(frame.to_image(), size))


def _cut_thumb(frame):
    import numpy as np

    small = frame.reformat(width=_CUT_SIZE[0], height=_CUT_SIZE[1], format="gray")
    return small.to_ndarray().astype(np.float32) / 255


def _pieces(path: Path, settings: Settings):
    """Decode `path`; yield ("window", start, frames) and ("short", start, end) per shot,
    each after ("shot", number) names its shot; ("error", message) if decoding fails
    part way."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise _NotVideo("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        shot, previous, t, shots = None, None, 0.0, 0
        recent: list[float] = []        # differences between this shot's frames
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else index / float(rate)
                thumb = _cut_thumb(frame)
                if shot is not None:
                    diff = float(np.abs(thumb - previous).mean())
                    # Just after a cut there is no motion to compare with yet.
                    usual = sum(recent) / len(recent) if recent else settings.cut_threshold
                    if diff > settings.cut_threshold and diff > _CUT_RATIO * usual:
                        yield from shot.end(t)
                        shot, recent = None, []
                    else:
                        recent = (recent + [diff])[-_CUT_HISTORY:]
                if shot is None:
                    shots += 1
                    shot = _Shot(start=t, settings=settings)
                    yield "shot", shots
                yield from shot.add(t, frame)
                previous = thumb
        except av.FFmpegError as e:
            if shot is not None:
                yield from shot.end(t)
            yield "error", f"decoding stopped at {t:.2f} s: {e.strerror or e}"
            return
        if shot is None:
            raise _NotVideo("no frames in its video stream")
        # The last frame shows for one frame time.
        yield from shot.end(t + 1 / float(rate))


class _NotVideo(Exception):
    pass


def _prepare_video(path: Path, file: str, name: str, text: str, settings: Settings,
                   dst: Path, report: Report, manifest: list) -> bool:
    """Cut one video into clips in dst; False when it cannot be read as video at all."""
    import av

    seconds = f"{settings.seconds:g} s"
    shot = 0
    try:
        for piece in _pieces(path, settings):
            kind = piece[0]
            if kind == "shot":
                shot = piece[1]
            elif kind == "short":
                _, start, end = piece
                report.reject(file, "too short",
                              f"too short: {end - start:.2f} s ({start:.2f}-{end:.2f} s, "
                              f"shot {shot}) < {seconds}",
                              shot=shot, start=round(start, 3), end=round(end, 3))
            elif kind == "error":
                report.reject(file, "unreadable", f"unreadable: {piece[1]}", shot=shot)
            else:
                _, start, frames = piece
                _keep_or_drop(file, name, text, shot, start, frames, settings, dst,
                              report, manifest)
    except _NotVideo as e:
        report.reject(file, "not a video", f"not a video: {e}")
        return False
    except av.FFmpegError as e:
        # str(e) repeats the errno and the path; the reason alone says it.
        report.reject(file, "unreadable", f"unreadable: {e.strerror or e}")
        return False
    return True


def _keep_or_drop(file, name, text, shot, start, frames, settings, dst, report, manifest):
    end = start + settings.frames / float(settings.fps)
    motion, brightness = motion_and_brightness(frames)
    where = dict(shot=shot, start=round(start, 3), end=round(end, 3),
                 motion=round(motion, 4), brightness=round(brightness, 3))
    if brightness < settings.min_brightness:
        report.reject(file, "too dark", f"too dark: mean brightness {brightness:.3f} < "
                      f"{settings.min_brightness:g}", **where)
        return
    if motion < settings.min_motion:
        report.reject(file, "static", f"static: {motion:.4f} of the picture moves < "
                      f"{settings.min_motion:g}", **where)
        return
    number = 1 + sum(1 for e in manifest if e["source"] == file)
    clip = f"{name}-{number:03d}.mp4"
    write_clip(dst / clip, frames, settings.fps)
    (dst / clip).with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    fps = settings.fps
    entry = {"file": clip, "caption": text, "frames": len(frames),
             "fps": int(fps) if fps.denominator == 1 else float(fps),
             "width": settings.size[0], "height": settings.size[1], "source": file,
             "shot": shot, "start": where["start"], "end": where["end"]}
    manifest.append(entry)
    report.keep(file, output=clip, **where)


def motion_and_brightness(frames) -> tuple[float, float]:
    """(share of the picture that changes per frame, mean luma), both 0..1."""
    import numpy as np

    h, w = frames[0].shape[:2]
    step = max(1, math.ceil(max(h, w) / 128))       # enough pixels to judge, fast
    luma = np.stack([f[::step, ::step] for f in frames]).astype(np.float32) / 255
    luma = luma @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)   # BT.709
    moving = np.abs(np.diff(luma, axis=0)) > _MOTION_LEVEL
    return float(moving.mean()), float(luma.mean())


def write_clip(path: Path, frames, fps: Fraction) -> None:
    """Frames (RGB uint8 arrays) -> an H.264 MP4 at fps, near lossless."""
    import av

    h, w = frames[0].shape[:2]
    time_base = Fraction(1) / fps
    tmp = path.with_name(path.name + ".part")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps,
                                          options={"crf": "10", "preset": "medium"})
            stream.width, stream.height = w, h
            # 4:4:4 keeps the colour of thin moving things (rain, hair) that 4:2:0 smears.
            stream.pix_fmt = "yuv444p"
            stream.time_base = time_base
            tag_bt709(stream.codec_context)
            for index, image in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(image, format="rgb24")
                vf = vf.reformat(format="yuv444p", dst_colorspace="ITU709",
                                 dst_color_range="MPEG")
                vf.pts, vf.time_base = index, time_base
                _mux(container, stream.encode(vf), time_base)
            _mux(container, stream.encode(None), time_base)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _mux(container, packets, frame_time_base: Fraction) -> None:
    # Encoders leave packet durations at 0 and the muxer would guess the last frame's;
    # every frame lasts 1/fps, so the clip lasts exactly frames / fps.
    for packet in packets:
        packet.duration = max(1, round(frame_time_base / Fraction(packet.time_base)))
        container.mux(packet)
