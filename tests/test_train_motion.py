"""`lofid train motion` on tiny models and clips made here: the loss goes down, the motion
LoRA loads through `lofid generate --motion-lora FILE:WEIGHT` and changes the loop, a
resumed run repeats an uninterrupted one, and bad input stops at once with exit code 2.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import Lazy, needs  # noqa: E402

torch = Lazy("torch")
av = pytest.importorskip("av")

import tiny_models  # noqa: E402  (tests/ is on sys.path)

from lofid.cli import main  # noqa: E402
from lofid.training import common, motion  # noqa: E402

# Loading a second adapter into a model makes peft say so; that is what adapters are for.
pytestmark = [needs("torch", "diffusers", "peft"),
              pytest.mark.filterwarnings("ignore:Already found a `peft_config`")]

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "motion.toml"
SIZE = 64
CLIP_FRAMES = 12
# Small LoRAs and a high learning rate, so a few dozen steps visibly learn the clips.
FAST = ["--resolution", str(SIZE), "--frames", "8", "--temporal-rank", "4", "--spatial-rank", "4",
        "--temporal-alpha", "4", "--spatial-alpha", "4", "--temporal-lr", "0.01", "--spatial-lr", "0.01",
        "--no-gradient-checkpointing"]


def write_clip(path: Path, colour, start: int, speed: int, frames: int = CLIP_FRAMES) -> None:
    """A box gliding right over a dark wall, written as `lofid prepare clips` writes clips
    (H.264, yuv444p, CRF 10)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "10"}
        for i in range(frames):
            picture = np.full((SIZE, SIZE, 3), 28, np.uint8)
            picture[SIZE // 2:, :] = 60                      # a floor, for some structure
            x = start + i * speed
            picture[20:40, x:x + 16] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_clips(folder: Path, frames: int = CLIP_FRAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, colour, start in (("amber-001", (250, 190, 60), 2), ("teal-001", (60, 200, 220), 6)):
        write_clip(folder / f"{name}.mp4", colour, start, speed=4, frames=frames)
        caption = f"lofivision, a {name.split('-')[0]} lantern drifting right, lofi"
        (folder / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
        entries.append({"file": f"{name}.mp4", "caption": caption, "frames": frames, "fps": 8,
                        "width": SIZE, "height": SIZE, "source": f"{name}.mov", "shot": 1,
                        "start": 0.0, "end": frames / 8})
    (folder / "manifest.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # One thread: on a busy machine a second one mostly waits for a core (results are equal).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("motion")
    yield {
        "tmp": tmp,
        "model": tiny_models.tiny_pipeline_dir(tmp / "models"),
        "adapter": tiny_models.tiny_motion_adapter_dir(tmp / "models"),
        "clips": write_clips(tmp / "clips"),
    }
    torch.set_num_threads(threads)


def lofid_process(*args, code: str = "sys.exit(main())"):
    """`lofid ARGS` in a fresh Python (the console script's entry point)."""
    return subprocess.run([sys.executable, "-c", f"import sys\nfrom lofid.cli import main\n{code}", *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})


def read_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.int16)


# --- the config file ---------------------------------------------------------------------------

def test_config_file_holds_the_code_defaults():
    data = common.read_toml(CONFIG)
    defaults = common.defaults(motion.SCHEMA)
    required = {k for k, v in defaults.items() if v is None}
    assert required == {"data", "output"}
    # Every key but the two a run must name is in the file, with the code's default.
    assert data == {k: v for k, v in defaults.items() if k not in required}
    text = CONFIG.read_text(encoding="utf-8")
    for key in required:
        assert f"# {key} = " in text
    # And the file loads as a config.
    cfg = common.load_config(motion.SCHEMA, CONFIG, {"data": "d", "output": "o.safetensors"})
    assert cfg["frames"] == 16 and cfg["temporal_rank"] == 32


# --- bad input -----------------------------------------------------------------------------------

def _bad_cases(world, tmp: Path):
    empty = tmp / "empty"
    empty.mkdir()
    no_clips = tmp / "no-clips"
    no_clips.mkdir()
    (no_clips / "manifest.json").write_text("[]", encoding="utf-8")
    lost = tmp / "lost-clip"
    lost.mkdir()
    (lost / "manifest.json").write_text(json.dumps([{"file": "gone.mp4", "caption": "x", "frames": 20}]),
                                        encoding="utf-8")
    typo = tmp / "typo.toml"
    typo.write_text("temporal_rnak = 8\n", encoding="utf-8")
    not_model = tmp / "not-a-model.safetensors"
    not_model.write_bytes(b"nope")
    return {
        "no manifest": (["--data", str(empty)], ["manifest.json", str(empty)]),
        "no clips listed": (["--data", str(no_clips)], ["lists no clips"]),
        "clip missing": (["--data", str(lost)], ["gone.mp4"]),
        "no data folder": (["--data", str(tmp / "nowhere")], ["nowhere", "no such folder"]),
        "frames past the clip": (["--frames", "16"], ["too short", "12 frames", "frames = 16"]),
        "stride past the clip": (["--frames", "8", "--stride", "2"], ["too short", "spans 15"]),
        "unknown config key": (["--config", str(typo)], ["temporal_rnak", "did you mean 'temporal_rank'"]),
        "value out of range": (["--stride", "0"], ["stride = 0", "from 1 to 16"]),
        "resolution not a multiple of 8": (["--resolution", "100"], ["resolution = 100", "multiple of 8"]),
        "not a model": (["--model", str(not_model)], ["not-a-model.safetensors"]),
        "adapter given as model": (["--model", str(world["adapter"])], ["motion_adapter", "checkpoint"]),
        "spatial file without spatial": (["--no-spatial", "--output-spatial", str(tmp / "s.safetensors")],
                                         ["spatial = false"]),
    }


def test_bad_input_is_one_line_and_exit_2(world, tmp_path, capsys):
    output = tmp_path / "out" / "m.safetensors"
    base = ["train", "motion", "--model", str(world["model"]), "--motion-adapter", str(world["adapter"]),
            "--data", str(world["clips"]), "--output", str(output), "--frames", "8"]
    for name, (args, words) in _bad_cases(world, tmp_path).items():
        # A flag given twice: the last one counts, so each case overrides the good base.
        assert main(base + args) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("lofid: error:") and len(err.strip().splitlines()) == 1, (name, err)
        for word in words:
            assert word in err, (name, word, err)
    assert not output.parent.exists()     # nothing was written for any of them


@pytest.mark.slow
def test_bad_input_stops_before_loading_torch(world, tmp_path):
    # A real process: exit code 2, one line, and neither torch nor diffusers imported.
    code = ("code = main()\n"
            "print('HEAVY', [m for m in ('torch', 'diffusers') if m in sys.modules])\n"
            "sys.exit(code)")
    r = lofid_process("train", "motion", "--model", str(world["model"]), "--motion-adapter",
                      str(world["adapter"]), "--data", str(world["clips"]), "--frames", "13",
                      "--output", str(tmp_path / "m.safetensors"), code=code)
    assert r.returncode == 2, r.stderr
    assert "HEAVY []" in r.stdout
    assert "too short" in r.stderr and "Traceback" not in r.stderr


# --- training and using the LoRA -----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(world):
    """One real `lofid train motion` run: 30 steps on the two clips, spatial LoRA written too."""
    tmp = world["tmp"]
    config = tmp / "motion.toml"
    config.write_text("checkpoint_every = 10\nvalidation_steps = 1\nwarmup_steps = 0\n", encoding="utf-8")
    out = tmp / "loras" / "glide.safetensors"
    spatial = tmp / "loras" / "glide-look.safetensors"
    r = lofid_process("train", "motion", "--config", str(config), "--model", str(world["model"]),
                      "--motion-adapter", str(world["adapter"]), "--data", str(world["clips"]),
                      "--output", str(out), "--output-spatial", str(spatial), "--steps", "30", *FAST)
    assert r.returncode == 0, r.stderr[-3000:]
    return {"out": out, "spatial": spatial, "stdout": r.stdout, "stderr": r.stderr,
            "run": common.train_dir_for(out)}


@pytest.mark.slow
def test_loss_goes_down_on_a_tiny_overfit_set(trained):
    losses = [entry["loss"] for entry in common.read_losses(trained["run"])]
    assert len(losses) == 30 and all(np.isfinite(losses))
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.95 * first, losses
    # The progress line and the summary a user sees.
    assert "step 30/30" in trained["stderr"] and "ETA" in trained["stderr"]
    assert f"wrote {trained['out']}" in trained["stdout"]
    checkpoints = common.list_checkpoints(trained["run"])
    assert [c.name for c in checkpoints] == ["step-000010", "step-000020", "step-000030"]
    assert (trained["run"] / "validation" / "step-000030.png").is_file()


@pytest.mark.slow
def test_saved_file_is_in_the_animatediff_motion_lora_format(trained):
    from safetensors import safe_open

    from lofid import loras

    keys = loras.lora_keys(trained["out"])
    assert loras.lora_format(keys) == "original_motion"
    # Per motion module: 2 attentions x 4 projections x (down, up); the tiny UNet has 7.
    assert len(keys) == 7 * 2 * 4 * 2
    assert all(".temporal_transformer.transformer_blocks." in k and ".processor.to_" in k for k in keys)
    assert "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1" \
           ".processor.to_out_lora.up.weight" in keys
    with safe_open(str(trained["out"]), framework="pt") as f:
        down = f.get_tensor("mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0"
                            ".attention_blocks.0.processor.to_q_lora.down.weight")
        assert down.shape[0] == 4 and down.dtype == torch.float16
        assert f.metadata()["lofid.frames"] == "8"
    # The spatial LoRA: kohya keys, nothing of the motion modules.
    spatial = loras.lora_keys(trained["spatial"])
    assert loras.lora_format(spatial) == "kohya"
    assert spatial and not any(loras.is_motion_key(k) for k in spatial)


@pytest.mark.slow
def test_motion_lora_changes_the_loop_and_weight_0_is_none(world, trained, tmp_path):
    def generate(name, *extra):
        out = tmp_path / f"{name}.mp4"
        code = main(["generate", "a lantern in a dark room", "-o", str(out), "--generator", "animatediff",
                     "--model", str(world["model"]), "--motion-adapter", str(world["adapter"]),
                     "--size", "64x64", "--frames", "8", "--fps", "8", "--steps", "2", "--seed", "5",
                     "--no-library", *extra])
        assert code == 0
        return read_frames(out)

    base = generate("base")
    with_lora = generate("lora", "--motion-lora", f"{trained['out']}:0.8")
    off = generate("off", "--motion-lora", f"{trained['out']}:0")
    assert np.abs(with_lora - base).mean() > 2.0
    # Exact on any CPU: a LoRA at weight 0 is not active, and loading it leaves the base
    # weights and their flags as they were, so the same arithmetic runs (lofid.loras).
    assert np.array_equal(off, base)
    # The spatial LoRA is an ordinary style LoRA.
    look = generate("look", "--lora", f"{trained['spatial']}:1")
    assert np.abs(look - base).mean() > 0.5


# --- resume and the in-memory entry (the benchmark's) --------------------------------------------

class StopsAtStep3(motion.MotionTask):
    """Presses Ctrl-C (a real SIGINT to this process) during the third step."""

    def loss(self, batch, models, generator):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return super().loss(batch, models, generator)


def _run_in_memory(parts, clips, train_dir: Path, task=motion.MotionTask, resume=None) -> common.TrainResult:
    cfg = motion.make_config(frames=8, resolution=SIZE, steps=6, temporal_rank=4, spatial_rank=4,
                             temporal_lr=0.01, spatial_lr=0.01, checkpoint_every=0, warmup_steps=2,
                             lr_schedule="cosine", batch_size=2, grad_accum=1, seed=3,
                             gradient_checkpointing=True, validation_prompts=[])
    checkpoint = common.find_checkpoint(resume, train_dir) if resume else None
    return common.train(cfg, lambda ctx: task(ctx, cfg, clips, parts=copy.deepcopy(parts)),
                        output=train_dir / "lora.safetensors", train_dir=train_dir, resume=checkpoint,
                        progress=False)


def test_interrupted_and_resumed_run_repeats_an_uninterrupted_one(world, tmp_path):
    # Models and clips in memory, as the benchmark passes them; the spatial pass and
    # gradient checkpointing on, both of which a resumed run must reproduce.
    parts = motion.build_parts(tiny_models.build_unet(), tiny_models.build_motion_adapter(),
                               tiny_models.build_vae(), tiny_models.build_text_encoder(),
                               _tokenizer(world), tiny_models.build_scheduler().config, name="tiny")
    clips = [(motion.decode_clip(c.path, SIZE), c.caption) for c in motion.read_manifest(world["clips"])]
    whole = _run_in_memory(parts, clips, tmp_path / "whole")
    stopped = _run_in_memory(parts, clips, tmp_path / "split", task=StopsAtStep3)
    assert stopped.interrupted and stopped.step == 3 and not (tmp_path / "split" / "lora.safetensors").exists()
    rest = _run_in_memory(parts, clips, tmp_path / "split", resume="latest")
    assert rest.start_step == 3 and not rest.interrupted
    # Exact: resuming restores the state bit for bit; then the same arithmetic runs.
    assert stopped.losses + rest.losses == whole.losses
    assert [e["loss"] for e in common.read_losses(tmp_path / "split")] == whole.losses
    from safetensors.torch import load_file
    a = load_file(str(tmp_path / "whole" / "lora.safetensors"))
    b = load_file(str(tmp_path / "split" / "lora.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _tokenizer(world):
    from transformers import CLIPTokenizer
    return CLIPTokenizer.from_pretrained(world["model"] / "tokenizer")



def test_each_pass_trains_only_its_own_lora(world):
    """The spatial LoRA learns from the one-frame pass alone, never from the clip pass."""
    parts = motion.build_parts(tiny_models.build_unet(), tiny_models.build_motion_adapter(),
                               tiny_models.build_vae(), tiny_models.build_text_encoder(),
                               _tokenizer(world), tiny_models.build_scheduler().config, name="tiny")
    clips = [(motion.decode_clip(c.path, SIZE), c.caption) for c in motion.read_manifest(world["clips"])]
    cfg = motion.make_config(frames=8, resolution=SIZE, temporal_rank=4, spatial_rank=4,
                             gradient_checkpointing=True, validation_prompts=[])
    ctx = common.Context(device=torch.device("cpu"), weight_dtype=torch.float32, process_index=0,
                         num_processes=1, is_main_process=True, train_dir=world["tmp"], cfg=cfg)
    task = motion.MotionTask(ctx, cfg, clips, parts=parts)
    with torch.no_grad():       # a LoRA part way through training: B no longer zero
        for p in task.temporal_params + task.spatial_params:
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    batch = task.load_batch([0, 1], torch.Generator().manual_seed(0))

    task.loss(batch, {"unet": task.unet}, torch.Generator().manual_seed(1)).backward()
    both = {id(p): p.grad.clone() for p in task.temporal_params + task.spatial_params}
    assert all(both[id(p)].abs().sum() > 0 for p in task.temporal_params + task.spatial_params)
    task.unet.zero_grad(set_to_none=True)

    # The spatial pass alone, with the same random draws (it draws first).
    task.spatial_loss(batch, torch.Generator().manual_seed(1)).backward()
    for p in task.spatial_params:
        assert torch.allclose(both[id(p)], p.grad, atol=1e-6)
    for p in task.temporal_params:        # switched off: no say in the one-frame pass
        assert p.grad is None or not p.grad.abs().sum()
