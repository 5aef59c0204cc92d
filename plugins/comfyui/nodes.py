"""The nodes. ComfyUI hands an IMAGE as a float tensor [frames, H, W, channels] in 0..1
on any device; lofid's loop code works on uint8 frames (N, H, W, 3). Every node turns
the one into the other the same way (to_frames), so the seam ratio a node shows is the
number `lofid library show` prints for the loop the send node keeps.

Only numpy and lofid's loop and scene code are imported here. torch is imported when a
node runs and was handed a torch tensor (ComfyUI has it loaded by then); lofid's control
client and Pillow, when the send node runs.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import numpy as np

from lofid.loop import close_loop, compute_metrics
from lofid.scene import parse

CATEGORY = "lofid"
# The rates `lofid library add` takes (lofi loops use 8-15).
MIN_FPS, MAX_FPS = 1.0, 60.0
DEFAULT_PROMPT = "rainy night, coffee shop, jazz lofi"


def to_frames(image) -> np.ndarray:
    """A ComfyUI IMAGE (torch tensor or numpy array, [frames, H, W, C] or one [H, W, C]
    picture, floats 0..1) as lofid's frames: (N, H, W, 3) uint8, rounded to the
    nearest level. An alpha channel is dropped."""
    if hasattr(image, "detach"):                  # a torch tensor, on any device
        image = image.detach().to("cpu").float().numpy()
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"lofid nodes take an IMAGE batch [frames, height, width, 3], "
                         f"got shape {tuple(array.shape)}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    array = array[..., :3]
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def like(frames: np.ndarray, image):
    """`frames` (uint8) as an IMAGE of the kind `image` was: a float tensor 0..1 on the
    same device, or a float32 numpy array."""
    out = frames.astype(np.float32) / 255.0
    if hasattr(image, "detach"):
        import torch
        return torch.from_numpy(out).to(image.device)
    return out


def _seam_text(metrics: dict) -> str:
    seam = metrics["seam_ratio"]
    verdict = ("seamless" if seam <= 1.5 else "a visible jump at the loop point"
               if math.isfinite(seam) else "a still picture that jumps at the loop point")
    return (f"seam ratio {seam:.3f} ({verdict}), motion {metrics['motion']:.3f}, "
            f"flicker {metrics['flicker']:.3f}")


class LofidSeamRatio:
    """How well a batch of frames loops: lofid's seam ratio (the jump from the last
    frame back to the first, over a typical step: 1.0 is as smooth as any step),
    motion and flicker, the numbers `lofid library show` prints."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE", "FLOAT", "FLOAT", "FLOAT", "STRING")
    RETURN_NAMES = ("images", "seam_ratio", "motion", "flicker", "summary")
    FUNCTION = "measure"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True           # a check worth running on its own
    DESCRIPTION = ("lofid's seam ratio, motion and flicker of a loop's frames; the "
                   "frames pass through unchanged.")

    def measure(self, images):
        frames = to_frames(images)
        if len(frames) < 2:
            raise ValueError(f"lofid Seam Ratio needs at least 2 frames, got {len(frames)}")
        m = compute_metrics(frames)
        text = _seam_text(m)
        return {"ui": {"text": [text]},
                "result": (images, m["seam_ratio"], m["motion"], m["flicker"], text)}


class LofidCloseLoop:
    """A clip that does not quite loop (interpolated frames often jerk at the loop
    point) made seamless by lofid's loop closing: its last frames crossfade into its
    first, and the clip is that many frames shorter."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE",),
            "overlap": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip":
                                "frames crossfaded; 0: a quarter of the clip"}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "close"
    CATEGORY = CATEGORY
    DESCRIPTION = "Crossfade a clip's end into its start so it loops without a seam."

    def close(self, images, overlap=0):
        frames = to_frames(images)
        closed = close_loop(frames, overlap or None)
        return (like(closed, images),)


class LofidPrompt:
    """lofid's words for a scene ("rainy night, coffee shop, jazz lofi") as the
    Stable Diffusion prompts lofid makes its own loops with, and the scene text to
    send with the loop."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": DEFAULT_PROMPT, "multiline": True})}}

    RETURN_TYPES = ("STRING", "STRING", "STRING")
    RETURN_NAMES = ("positive", "negative", "scene")
    FUNCTION = "prompts"
    CATEGORY = CATEGORY
    DESCRIPTION = "lofid's scene words as positive and negative prompts."

    def prompts(self, text):
        spec = parse(text)
        return (spec.prompt(), spec.negative_prompt(), text)


class SendToLofid:
    """The frames into lofid's library as a loop (its metrics computed, its scene
    parsed from the prompt) and, with play_now, onto lofid's picture at once: written
    as PNG frames to a temporary folder and handed to the running lofid over its
    control socket (`library.add`). ComfyUI and lofid run on the same machine."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "prompt": ("STRING", {"default": DEFAULT_PROMPT, "multiline": True}),
                "fps": ("FLOAT", {"default": 12.0, "min": MIN_FPS, "max": MAX_FPS, "step": 0.5}),
            },
            "optional": {
                "play_now": ("BOOLEAN", {"default": True}),
                "socket": ("STRING", {"default": "", "tooltip":
                                      "lofid's control socket; empty: its default"}),
            },
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("loop",)
    FUNCTION = "send"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    DESCRIPTION = "Keep the frames as a loop in lofid's library, and play it now."

    def send(self, images, prompt, fps, play_now=True, socket=""):
        from lofid.control.client import Client, ControlError, NoDaemon
        from lofid.paths import socket_path
        frames = to_frames(images)
        if len(frames) < 2:
            raise ValueError(f"Send to lofid needs at least 2 frames, got {len(frames)}")
        where = socket.strip() or str(socket_path())
        try:
            client = Client(os.path.expanduser(where), timeout=600)
        except NoDaemon:
            raise RuntimeError(f"Send to lofid: no lofid answers on {where}. Start one with "
                               f"`lofid run --socket` (or give its socket), then queue "
                               f"again.") from None
        folder = tempfile.mkdtemp(prefix="lofid-comfyui-")
        try:
            _write_pngs(frames, folder)
            try:
                answer = client.call("library.add", folder, prompt,
                                     {"fps": float(fps), "play_now": bool(play_now),
                                      "made_by": "comfyui"})
            except (ControlError, NoDaemon) as e:
                raise RuntimeError(f"Send to lofid: {e}") from None
        finally:
            client.close()
            shutil.rmtree(folder, ignore_errors=True)
        m = {k: math.inf if v is None else v for k, v in answer["metrics"].items()}
        text = (f"loop {answer['loop']} [{answer['scene']}] in lofid's library"
                f"{', playing now' if answer.get('play') else ''}: {_seam_text(m)}")
        return {"ui": {"text": [text]}, "result": (answer["loop"],)}


def _write_pngs(frames: np.ndarray, folder: str) -> None:
    # PNG: lossless, so lofid keeps exactly the frames measured here. Level 1: speed
    # over size, the files live for a second.
    from PIL import Image
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"frame_{i:05d}.png"),
                                    compress_level=1)


NODE_CLASS_MAPPINGS = {
    "LofidSeamRatio": LofidSeamRatio,
    "LofidCloseLoop": LofidCloseLoop,
    "LofidPrompt": LofidPrompt,
    "SendToLofid": SendToLofid,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LofidSeamRatio": "lofid Seam Ratio",
    "LofidCloseLoop": "lofid Close Loop",
    "LofidPrompt": "lofid Prompt",
    "SendToLofid": "Send to lofid",
}
