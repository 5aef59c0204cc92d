"""`lofid train style` as a user runs it, on the tiny SD1.5 model (CPU, no network).

One uninterrupted training run is shared by the file (module fixture); another run of
the same settings is stopped with a real Ctrl-C in a child process and resumed, and
must reproduce the first run's losses exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import Lazy, needs  # noqa: E402

torch = Lazy("torch")
pytestmark = needs("torch", "diffusers", "peft", "accelerate")

from lofid.cli import main  # noqa: E402
from lofid.training import common, style  # noqa: E402

ROOT = Path(__file__).parents[1]
LOFID = [sys.executable, "-m", "lofid"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
STEPS = 40


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread: tiny models are all overhead, and the child process (OMP_NUM_THREADS=1)
    must compute exactly what this one does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny model folders and an overfit set: four pictures of plain colour fields with
    stripes, captioned like `lofid prepare images` captions them."""
    from PIL import Image
    from tiny_models import tiny_motion_adapter_dir, tiny_pipeline_dir

    tmp = tmp_path_factory.mktemp("style")
    data = tmp / "data"
    data.mkdir()
    colours = [(220, 120, 40), (40, 60, 160), (230, 200, 120), (30, 30, 50)]
    for i, colour in enumerate(colours):
        pixels = np.zeros((80, 96, 3), np.uint8)      # not square: the trainer crops
        pixels[:] = colour
        pixels[::10] = 255 - np.array(colour, np.uint8)
        Image.fromarray(pixels).save(data / f"room_{i}.png")
        (data / f"room_{i}.txt").write_text(f"lofivision, cozy room, night, lofi, {i}", encoding="utf-8")
    return {"tmp": tmp, "data": data, "model": tiny_pipeline_dir(tmp / "models"),
            "adapter": tiny_motion_adapter_dir(tmp / "models")}


def _args(world, output, steps=STEPS):
    return ["train", "style", "--model", str(world["model"]), "--data", str(world["data"]),
            "--output", str(output), "--resolution", "64", "--steps", str(steps),
            "--batch-size", "2", "--grad-accum", "1", "--rank", "4", "--alpha", "4",
            "--learning-rate", "2e-2", "--warmup-steps", "4", "--lr-schedule", "cosine",
            "--caption-dropout", "0.25", "--flip", "--min-snr-gamma", "0", "--checkpoint-every", "10",
            "--validation-every", "0", "--validation-steps", "2",
            "--validation-prompts", "lofivision, cozy room, night", "--save-precision", "fp32"]


@pytest.fixture(scope="module")
def trained(world):
    """One uninterrupted run (in this process, through the CLI's main)."""
    output = world["tmp"] / "whole" / "cozy.safetensors"
    assert main(_args(world, output)) == 0
    return output


def _loras(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_config_file_equals_the_code_defaults():
    """training/configs/style.toml lists every key with the code's default, so the two
    cannot drift apart (data and output are the user's, commented out)."""
    in_file = common.read_toml(ROOT / "training" / "configs" / "style.toml")
    in_code = {k: v for k, v in common.defaults(style.SCHEMA).items() if v is not None}
    assert in_file == in_code
    assert {"data", "output"} == {o.name for o in style.SCHEMA if o.default is None}
    assert in_file["rank"] == 32 and 2000 <= in_file["steps"] <= 4000


def _fixed_loss(world, lora=None) -> float:
    """The noise-prediction error on the training pictures at fixed timesteps and noise,
    with the LoRA loaded the way `lofid generate --lora` loads it (or without)."""
    from diffusers import StableDiffusionPipeline

    from lofid import loras
    from lofid.models import ModelRef

    pipe = StableDiffusionPipeline.from_pretrained(world["model"], safety_checker=None)
    if lora is not None:
        loras.apply_loras(pipe, [(ModelRef("lora", lora, "cozy", "kohya"), 1.0)], [])
    gen = torch.Generator().manual_seed(11)
    errors = []
    with torch.no_grad():
        for picture, caption in style.list_images(world["data"]):
            x = style.read_picture(picture, 64)[None]
            latents = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
            ids = pipe.tokenizer([caption], padding="max_length", max_length=77,
                                 return_tensors="pt").input_ids
            hidden = pipe.text_encoder(ids)[0]
            for t in range(50, 1000, 100):
                noise = torch.randn(latents.shape, generator=gen)
                noisy = pipe.scheduler.add_noise(latents, noise, torch.tensor([t]))
                pred = pipe.unet(noisy, torch.tensor([t]), hidden).sample
                errors.append(torch.mean((pred - noise) ** 2).item())
    return float(np.mean(errors))


def test_training_lowers_the_loss_and_writes_a_kohya_lora(world, trained):
    log = common.read_losses(trained.with_suffix(".training"))
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    losses = [r["loss"] for r in log]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]), losses
    # Measured without the training noise: the same pictures, timesteps and noise.
    before, after = _fixed_loss(world), _fixed_loss(world, trained)
    assert after < 0.85 * before, (before, after)
    tensors, meta = _loras(trained)
    assert tensors and all(k.startswith("lora_unet_") for k in tensors)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in tensors
    assert {k.rsplit("_", 1)[-1].split(".")[0] for k in tensors} >= {"q", "k", "v", "0"}
    assert meta["ss_network_dim"] == "4" and meta["ss_base_model_version"] == "sd_v1"
    assert meta["modelspec.trigger_phrase"] == "lofivision" and meta["ss_steps"] == str(STEPS)
    assert json.loads(meta["ss_tag_frequency"])["data"]["cozy room"] == 4
    # The validation sheet of the end: one picture per prompt, at the training size.
    from PIL import Image
    sheet = trained.with_suffix(".training") / "validation" / f"step-{STEPS:06d}.png"
    with Image.open(sheet) as im:
        assert im.size == (64, 64)
    kept = [p.name for p in common.list_checkpoints(trained.with_suffix(".training"))]
    assert kept == ["step-000020", "step-000030", "step-000040"]


def test_text_encoder_lora_with_gradient_checkpointing_is_trained_and_loads(world, tmp_path):
    from diffusers import StableDiffusionPipeline

    from lofid import loras
    from lofid.models import ModelRef

    output = tmp_path / "with-te.safetensors"
    args = _args(world, output, steps=4) + ["--train-text-encoder", "--text-encoder-lr", "1e-2",
                                            "--gradient-checkpointing"]
    assert main(args) == 0
    tensors, meta = _loras(output)
    te_up = [v for k, v in tensors.items() if k.startswith("lora_te_") and k.endswith("lora_up.weight")]
    assert te_up and all(k.startswith(("lora_unet_", "lora_te_text_model_encoder_layers_")) for k in tensors)
    # Every layer trained (recomputed activations still carry gradients): none is left at
    # its zero start.
    ups = [v for k, v in tensors.items() if k.endswith("lora_up.weight")]
    assert len(ups) > len(te_up) and all(v.abs().max() > 0 for v in ups)
    assert meta["ss_network_train_unet_only"] == "False" and meta["ss_text_encoder_lr"] == "0.01"
    pipe = StableDiffusionPipeline.from_pretrained(world["model"], safety_checker=None)
    ids = pipe.tokenizer(["lofivision, cozy room"], padding="max_length", max_length=77,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        before = pipe.text_encoder(ids)[0]
        loras.apply_loras(pipe, [(ModelRef("lora", output, "te", "kohya"), 1.0)], [])
        after = pipe.text_encoder(ids)[0]
    assert (after - before).abs().max() > 1e-4


def test_a_single_file_checkpoint_trains_like_its_folder(world, tmp_path):
    """The same weights as one original-layout .safetensors (configs from the diffusers
    folder beside it): the same losses, step for step."""
    from tiny_models import tiny_checkpoint_file

    single = tiny_checkpoint_file(world["model"].parent)
    runs = {}
    for name, model in (("folder", world["model"]), ("file", single)):
        output = tmp_path / name / "l.safetensors"
        args = _args(world, output, steps=3)
        args[args.index("--model") + 1] = str(model)
        assert main(args) == 0
        runs[name] = [r["loss"] for r in common.read_losses(output.with_suffix(".training"))]
    # Exact: both loaders give the same weights bit for bit (test_models checks it) and the
    # trainer freezes every model alike, so both runs do the same arithmetic on this CPU.
    assert len(runs["file"]) == 3 and runs["file"] == runs["folder"]


def test_buckets_train_each_picture_at_its_own_size(world, tmp_path, monkeypatch):
    """Pictures of two sizes (as `lofid prepare images --buckets` writes them): every
    batch holds one size, and the run goes through."""
    from PIL import Image

    data = tmp_path / "buckets"
    data.mkdir()
    for i, size in enumerate([(64, 64), (96, 64), (64, 64), (96, 64), (96, 64)]):
        Image.new("RGB", size, (40 * i, 100, 200 - 30 * i)).save(data / f"p{i}.png")
        (data / f"p{i}.txt").write_text(f"lofivision, cozy, {size[0]}x{size[1]}", encoding="utf-8")
    output = tmp_path / "b.safetensors"
    args = _args(world, output, steps=4) + ["--buckets"]
    args[args.index("--data") + 1] = str(data)
    seen = []
    real = style.StyleTask.load_batch

    def spy(self, indices, generator):
        batch = real(self, indices, generator)
        seen.append(tuple(batch[0].shape))
        return batch
    monkeypatch.setattr(style.StyleTask, "load_batch", spy)
    assert main(args) == 0
    assert len(seen) == 4 and {s[2:] for s in seen} == {(64, 64), (64, 96)}
    assert output.is_file()


def _frames(path):
    import av
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.int16)


def test_lofid_generate_loads_the_lora_and_it_changes_the_picture(world, trained, capsys):
    from lofid.generators import animatediff

    common_args = ["generate", "rainy window, night", "--generator", "animatediff",
                   "--model", str(world["model"]), "--motion-adapter", str(world["adapter"]),
                   "--size", "64x64", "--frames", "8", "--fps", "8", "--steps", "2",
                   "--seed", "1", "--no-library"]
    plain, styled = world["tmp"] / "plain.mp4", world["tmp"] / "styled.mp4"
    try:
        assert main(common_args + ["-o", str(plain)]) == 0
        assert main(common_args + ["-o", str(styled), "--lora", str(trained)]) == 0
    finally:
        animatediff.unload()
    a, b = _frames(plain), _frames(styled)
    assert a.shape == b.shape == (8, 64, 64, 3)
    assert np.abs(a - b).mean() > 1.0


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_equals_the_uninterrupted_run(world, trained):
    output = world["tmp"] / "parts" / "cozy.safetensors"
    train_dir = output.with_suffix(".training")
    child = subprocess.Popen(LOFID + _args(world, output), env=ENV, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = train_dir / common.LOSSES_FILE
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    assert child.poll() is None, child.communicate()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    stopped = len(log.read_text().splitlines())
    assert 12 <= stopped < STEPS
    assert f"interrupted at step {stopped}" in out and "--resume latest" in out
    assert "loss" in err and "it/s" in err and "ETA" in err and f"step {stopped}/{STEPS}" in err
    assert common.list_checkpoints(train_dir)[-1].name == f"step-{stopped:06d}"
    assert not output.exists()

    assert main(_args(world, output) + ["--resume", "latest"]) == 0
    assert log.read_text() == (trained.with_suffix(".training") / common.LOSSES_FILE).read_text()
    got, want = _loras(output)[0], _loras(trained)[0]
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


@pytest.mark.slow
@pytest.mark.parametrize("extra, config, words", [
    ([], "rnak = 8\n", ["'rnak'", "did you mean 'rank'"]),
    ([], "rank = 0\n", ["rank = 0", "from 1 to 512"]),
    ([], "learning_rate = \"fast\"\n", ["learning_rate = 'fast'", "a number"]),
    (["--steps", "0"], "", ["--steps", "steps = 0"]),
    (["--resolution", "100"], "", ["resolution = 100", "multiple of 8"]),
    (["--data", "EMPTY"], "", ["holds no .png"]),
    (["--data", "MISSING"], "", ["no such folder"]),
    (["--model", "JUNK"], "", ["junk.safetensors", "not a readable .safetensors"]),
    (["--model", "ADAPTER"], "", ["is a motion_adapter", "expected a base model"]),
    (["--resume", "latest"], "", ["no checkpoint"]),
    (["--model", "LONELY"], "", ["single-file SD1.5 checkpoint needs a diffusers folder"]),
    (["--model", "no-such-model"], "", ["no checkpoint named 'no-such-model'"]),
    (["--data", "ODD", "--buckets"], "", ["buckets = true", "60x64", "multiples of 8"]),
])
def test_bad_input_exits_2_before_loading_any_model(world, tmp_path, extra, config, words):
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is no model")
    subst = {"EMPTY": str(tmp_path / "empty"), "MISSING": str(tmp_path / "missing"),
             "JUNK": str(junk), "ADAPTER": str(world["adapter"])}
    if "ODD" in extra:      # a picture whose width the VAE cannot take as it is
        from PIL import Image
        (tmp_path / "odd").mkdir()
        Image.new("RGB", (60, 64)).save(tmp_path / "odd" / "odd.png")
        subst["ODD"] = str(tmp_path / "odd")
    if "LONELY" in extra:   # a checkpoint file with no diffusers folder beside it for its configs
        from tiny_models import tiny_checkpoint_file
        subst["LONELY"] = str(tiny_checkpoint_file(tmp_path / "lonely"))
    cfg = tmp_path / "style.toml"
    cfg.write_text(config, encoding="utf-8")
    args = ["train", "style", "--config", str(cfg), "--model", str(world["model"]),
            "--data", str(world["data"]), "--output", str(tmp_path / "x.safetensors")]
    args += [subst.get(a, a) for a in extra]
    probe = ("import sys; from lofid.cli import main; code = main(sys.argv[1:]); "
             "print('heavy:', [m for m in ('diffusers', 'transformers', 'peft', 'accelerate') "
             "if m in sys.modules]); "
             "sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", probe, *args], env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert "heavy: []" in r.stdout
    assert not (tmp_path / "x.training").exists()


def test_benchmark_runs_at_tiny_size(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import train_lora

    rows = train_lora.main(["--tiny", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "style LoRA" in out and "steps/s" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["case"] for r in saved["rows"]] == [r["case"] for r in rows]
    style_row = next(r for r in rows if r["case"].startswith("style"))
    assert style_row["steps_per_s"] > 0 and style_row["steps"] >= 2
