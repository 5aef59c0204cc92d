"""LoRAs on the tiny AnimateDiff pipeline: made with peft, saved, loaded by path and name.

One tiny pipeline is shared by the whole file (building it is the slow part); every test
starts from a pipeline with no LoRA loaded.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from helpers import Lazy, needs  # noqa: E402

torch = Lazy("torch")

import tiny_models  # noqa: E402  (tests/ is on sys.path)

from lofid import loras, models  # noqa: E402
from lofid.loras import LoraError, apply_loras, fuse, parse_lora_arg, unfuse  # noqa: E402
from lofid.models import ModelRef  # noqa: E402

# Loading a second adapter into a model makes peft say so; that is what adapters are for.
pytestmark = [needs("torch", "diffusers", "peft"),
              pytest.mark.filterwarnings("ignore:Already found a `peft_config`")]

# Spatial attention of the UNet (what a style LoRA trains) and the temporal attention of
# the motion modules (what a motion LoRA trains).
SPATIAL = r"^(down|up|mid)_blocks?(\.\d+)?\.attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.to_(q|k|v|out\.0)$"
TEMPORAL = r"^.*motion_modules\.\d+\.transformer_blocks\.\d+\.attn[12]\.to_(q|k|v|out\.0)$"
TEXT = ["q_proj", "k_proj", "v_proj", "out_proj"]


# --- making LoRA files the way trainers save them -----------------------------------------

def _peft_lora(model, targets, seed, rank=2, alpha=2):
    """peft state dict of a LoRA on `targets` of a copy of `model`, with random non-zero B."""
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    model = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets),
                                    copy.deepcopy(model), adapter_name="default")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:    # peft starts B at zero (a no-op LoRA); a trained one is not
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return get_peft_model_state_dict(model, adapter_name="default")


def _save(folder: Path, filename, unet=None, text_encoder=None) -> Path:
    from diffusers import AnimateDiffPipeline

    AnimateDiffPipeline.save_lora_weights(folder, unet_lora_layers=unet,
                                          text_encoder_lora_layers=text_encoder, weight_name=filename)
    return folder / filename


def _to_kohya(unet_sd: dict, text_sd: dict, alpha: float) -> dict:
    """The same LoRA with kohya keys: lora_unet_<module>, lora_te_text_model_<module>, with
    dots made underscores, .lora_down/.lora_up weights and an .alpha each."""
    out = {}
    for prefix, sd in (("lora_unet_", unet_sd), ("lora_te_text_model_", text_sd)):
        for key, value in sd.items():
            module, _, rest = key.rpartition(".lora_")
            stem = prefix + module.replace(".", "_")
            out[stem + (".lora_down.weight" if rest.startswith("A") else ".lora_up.weight")] = value.contiguous()
            out[stem + ".alpha"] = torch.tensor(alpha)
    return out


def _to_original_motion(unet_sd: dict) -> dict:
    """The same motion LoRA with the AnimateDiff repository's keys (as in v2_lora_*.ckpt)."""
    out = {}
    for key, value in unet_sd.items():
        module, _, rest = key.rpartition(".lora_")
        module = (module.replace(".transformer_blocks.", ".temporal_transformer.transformer_blocks.")
                  .replace(".attn1.", ".attention_blocks.0.").replace(".attn2.", ".attention_blocks.1."))
        block, _, proj = module.rpartition(".")
        if proj == "0":             # to_out.0 is to_out in the original
            block, _, proj = block.rpartition(".")
        side = "down" if rest.startswith("A") else "up"
        out[f"{block}.processor.{proj}_lora.{side}.weight"] = value.contiguous()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny pipeline, its base output and LoRA files made with peft."""
    tmp = tmp_path_factory.mktemp("loras")
    pipe = tiny_models.tiny_pipeline(tmp / "models")
    files = tmp / "files"
    style_unet = _peft_lora(pipe.unet, SPATIAL, seed=1)
    assert style_unet and not any("motion_modules" in k for k in style_unet)
    motion_a = _peft_lora(pipe.unet, TEMPORAL, seed=3)
    assert motion_a and all("motion_modules" in k for k in motion_a)
    style_text = _peft_lora(pipe.text_encoder, TEXT, seed=2)
    paths = {
        "style": _save(files / "style", "cozy_style.safetensors", unet=style_unet, text_encoder=style_text),
        "zoom": _save(files / "zoom", "zoom_in.safetensors", unet=motion_a),
        "pan": _save(files / "pan", "pan_left.safetensors", unet=_peft_lora(pipe.unet, TEMPORAL, seed=4)),
    }
    from safetensors.torch import save_file

    paths["kohya"] = files / "cozy_kohya.safetensors"
    save_file(_to_kohya(style_unet, style_text, alpha=2.0), str(paths["kohya"]))
    paths["zoom_original"] = files / "v2_lora_ZoomIn.ckpt"
    torch.save(_to_original_motion(motion_a), paths["zoom_original"])
    return {"pipe": pipe, "paths": paths, "base": _render(pipe), "models": tmp / "models"}


@pytest.fixture
def pipe(world):
    yield world["pipe"]
    loras.unload_all(world["pipe"])


# Renders compared with torch.equal are exact by construction: an adapter at weight 0 or
# not listed is inactive, so each layer runs its base module alone, with the same weights
# and requires_grad flags (lofid.loras keeps both), on the same input: the same arithmetic.
def _render(pipe):
    gen = torch.Generator().manual_seed(7)
    return pipe("a cozy study room, rain", num_frames=2, height=16, width=16, num_inference_steps=1,
                guidance_scale=1.0, generator=gen, output_type="pt").frames


def style(world, key, weight=1.0):
    return (ModelRef("lora", world["paths"][key], key, "kohya" if key == "kohya" else "peft"), weight)


def motion(world, key, weight=1.0):
    return (ModelRef("motion_lora", world["paths"][key], key, "peft"), weight)


def _diff(a, b) -> float:
    return (a - b).abs().max().item()


# --- parse_lora_arg -------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("ghibli", ("ghibli", 1.0)),
    ("ghibli:0.8", ("ghibli", 0.8)),
    ("loras/cozy.safetensors:0", ("loras/cozy.safetensors", 0.0)),
    ("zoom_in:-0.5", ("zoom_in", -0.5)),
    ("a:b:1.2", ("a:b", 1.2)),
    ("night:owl.safetensors", ("night:owl.safetensors", 1.0)),     # colon inside a file name
    ("dir:2024/lora.safetensors", ("dir:2024/lora.safetensors", 1.0)),
    ("  ghibli : 0.25 ", ("ghibli", 0.25)),
])
def test_parse_lora_arg(text, expected):
    assert parse_lora_arg(text) == expected


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    (":0.5", "no file or name"),
    ("ghibli:", "no weight"),
    ("ghibli:0,8", "not a number"),
    ("ghibli:1.2.3", "not a number"),
    ("ghibli:75", "out of range"),
    ("ghibli:nan", "out of range"),
    ("ghibli:inf", "out of range"),
])
def test_parse_lora_arg_errors_name_the_problem(text, words):
    with pytest.raises(ValueError, match=words):
        parse_lora_arg(text)


def test_parse_lora_arg_existing_file_with_colon(tmp_path):
    odd = tmp_path / "cozy:0.5"
    odd.write_bytes(b"")
    assert parse_lora_arg(str(odd)) == (str(odd), 1.0)


# --- applying -------------------------------------------------------------------------------

def test_weight_zero_is_the_base_picture_and_weight_one_changes_it(world, pipe):
    base = world["base"]
    apply_loras(pipe, [style(world, "style", 0.0)], [motion(world, "zoom", 0.0)])
    assert torch.equal(_render(pipe), base)
    apply_loras(pipe, [style(world, "style", 1.0)], [])
    with_style = _render(pipe)
    assert _diff(with_style, base) > 1e-3
    apply_loras(pipe, [], [motion(world, "zoom", 1.0)])
    with_motion = _render(pipe)
    assert _diff(with_motion, base) > 1e-3
    assert _diff(with_motion, with_style) > 1e-3
    apply_loras(pipe, [], [])
    assert torch.equal(_render(pipe), base)


def test_style_and_two_motion_loras_each_with_its_own_weight(world, pipe):
    apply_loras(pipe, [], [motion(world, "zoom", 1.0)])
    zoom = _render(pipe)
    apply_loras(pipe, [], [motion(world, "zoom", 1.0), motion(world, "pan", 0.0)])
    assert torch.equal(_render(pipe), zoom)              # pan at 0 is not active: adds nothing
    apply_loras(pipe, [], [motion(world, "zoom", 1.0), motion(world, "pan", 0.6)])
    both = _render(pipe)
    assert _diff(both, zoom) > 1e-3
    apply_loras(pipe, [style(world, "style", 0.8)], [motion(world, "zoom", 1.0), motion(world, "pan", 0.6)])
    assert _diff(_render(pipe), both) > 1e-3
    active = dict(loras.active_adapters(pipe))
    assert sorted(active.values()) == [0.6, 0.8, 1.0]
    assert set(active) <= set(pipe.get_list_adapters()["unet"])
    # Back to the motion LoRA alone: the style (also on the text encoder) and pan step aside.
    apply_loras(pipe, [], [motion(world, "zoom", 1.0)])
    assert torch.equal(_render(pipe), zoom)


def test_no_loras_on_a_fresh_pipeline_is_harmless(world):
    fresh = tiny_models.tiny_pipeline(world["models"])     # from the saved folders: quick
    apply_loras(fresh, [], [])
    assert loras.loaded_adapters(fresh) == {} and loras.active_adapters(fresh) == []
    assert fuse(fresh) is False and unfuse(fresh) is False


def test_switching_loras_does_not_reload(world, pipe, monkeypatch):
    calls = []
    real = pipe.load_lora_weights

    def counting(*args, **kwargs):
        calls.append(kwargs.get("adapter_name"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipe, "load_lora_weights", counting)
    unet, text_encoder = pipe.unet, pipe.text_encoder
    apply_loras(pipe, [style(world, "style", 1.0)], [motion(world, "zoom", 1.0)])
    first = _render(pipe)
    apply_loras(pipe, [], [motion(world, "pan", 0.7)])
    apply_loras(pipe, [style(world, "style", 1.0)], [motion(world, "zoom", 1.0)])
    again = _render(pipe)
    assert len(calls) == 3 and len(set(calls)) == 3      # style, zoom, pan: once each
    assert pipe.unet is unet and pipe.text_encoder is text_encoder
    # The idle pan adapter, still loaded, has no effect.
    assert torch.equal(again, first)


def test_idle_adapters_are_deleted_past_the_limit(world, pipe, monkeypatch):
    monkeypatch.setattr(loras, "MAX_IDLE_ADAPTERS", 0)
    apply_loras(pipe, [], [motion(world, "zoom", 1.0)])
    zoom_name = loras.loaded_adapters(pipe)[str(world["paths"]["zoom"].resolve())]
    apply_loras(pipe, [], [motion(world, "pan", 1.0)])
    present = {n for names in pipe.get_list_adapters().values() for n in names}
    assert zoom_name not in present
    assert len(present) == 1


def test_fused_matches_unfused_and_unfusing_is_exact(world, pipe):
    apply_loras(pipe, [style(world, "style", 0.7)], [motion(world, "zoom", 1.2)])
    unfused = _render(pipe)
    assert fuse(pipe) is True
    assert fuse(pipe) is False                           # already fused with these weights
    # Merged weights compute W+BA in one matrix instead of Wx + B(Ax): rounding only,
    # pixels are in [0, 1] and a LoRA changes them by more than 1e-3.
    assert _diff(_render(pipe), unfused) < 1e-5
    # Same set again: stays fused; a new weight: unfused first, then applied.
    apply_loras(pipe, [style(world, "style", 0.7)], [motion(world, "zoom", 1.2)])
    assert fuse(pipe) is False                           # still fused: nothing to merge
    apply_loras(pipe, [style(world, "style", 0.7)], [motion(world, "zoom", 0.5)])
    assert _diff(_render(pipe), unfused) > 1e-4
    assert fuse(pipe) is True                            # the old merge was undone
    apply_loras(pipe, [], [])
    assert torch.equal(_render(pipe), world["base"])     # base weights copied back, not subtracted
    assert unfuse(pipe) is False


def test_kohya_style_lora_loads_like_its_peft_twin(world, pipe):
    assert loras.lora_format(loras.lora_keys(world["paths"]["kohya"])) == "kohya"
    apply_loras(pipe, [style(world, "style", 1.0)], [])
    peft_out = _render(pipe)
    apply_loras(pipe, [style(world, "kohya", 1.0)], [])
    # The same numbers in another layout; diffusers converts kohya's alpha to a scale,
    # which may round differently: a tolerance far below what a LoRA changes (> 1e-3).
    assert _diff(_render(pipe), peft_out) < 1e-5
    assert _diff(peft_out, world["base"]) > 1e-3


def test_original_animatediff_motion_lora_loads_like_its_diffusers_twin(world, pipe):
    assert any("attention_blocks.0.processor.to_q_lora.down" in k
               for k in loras.lora_keys(world["paths"]["zoom_original"]))
    apply_loras(pipe, [], [motion(world, "zoom", 1.0)])
    zoom = _render(pipe)
    apply_loras(pipe, [], [motion(world, "zoom_original", 1.0)])
    # The same numbers under other names, converted on load: a tolerance for rounding
    # in the conversion, far below what a LoRA changes (> 1e-3).
    assert _diff(_render(pipe), zoom) < 1e-5


def test_lora_given_in_the_wrong_role_is_refused(world, pipe):
    with pytest.raises(LoraError, match="not a motion LoRA") as e:
        apply_loras(pipe, [], [motion(world, "style", 1.0)])
    assert "cozy_style.safetensors" in str(e.value)
    with pytest.raises(LoraError, match="is a motion LoRA"):
        apply_loras(pipe, [style(world, "zoom", 1.0)], [])
    with pytest.raises(LoraError, match="given twice"):
        apply_loras(pipe, [style(world, "style", 1.0)], [motion(world, "zoom"), motion(world, "zoom")])


def test_bad_files_are_named(world, pipe, tmp_path):
    apply_loras(pipe, [], [motion(world, "zoom", 1.0)])
    before = _render(pipe)
    with pytest.raises(LoraError, match="no such LoRA file") as e:
        apply_loras(pipe, [(ModelRef("lora", tmp_path / "gone.safetensors", "gone", "peft"), 1.0)], [])
    assert "gone.safetensors" in str(e.value)

    from safetensors.torch import save_file
    not_lora = tmp_path / "checkpoint.safetensors"
    save_file({"model.diffusion_model.conv_in.weight": torch.zeros(2, 2)}, str(not_lora))
    with pytest.raises(LoraError, match="not a LoRA key") as e:
        apply_loras(pipe, [(ModelRef("lora", not_lora, "checkpoint", "peft"), 1.0)], [])
    assert str(not_lora) in str(e.value)

    kohya_motion = tmp_path / "kohya_motion.safetensors"
    save_file({"lora_unet_down_blocks_0_motion_modules_0_transformer_blocks_0_attn1_to_q.lora_down.weight":
               torch.zeros(2, 32)}, str(kohya_motion))
    with pytest.raises(LoraError, match="kohya-format motion LoRA") as e:
        apply_loras(pipe, [], [(ModelRef("motion_lora", kohya_motion, "km", "kohya"), 1.0)])
    assert "kohya_motion.safetensors" in str(e.value)

    # A failed call, even after loading a good file first, leaves the pipeline as it was.
    with pytest.raises(LoraError, match="no such LoRA file"):
        apply_loras(pipe, [style(world, "style", 1.0)],
                    [(ModelRef("motion_lora", tmp_path / "gone.safetensors", "gone", "peft"), 1.0)])
    assert torch.equal(_render(pipe), before)


def test_loaded_by_name_through_models_find(world, pipe, tmp_path):
    folder = tmp_path / "lora_folder"
    folder.mkdir()
    (folder / "zoom_in.safetensors").write_bytes(world["paths"]["zoom"].read_bytes())
    (folder / "cozy_style.safetensors").write_bytes(world["paths"]["style"].read_bytes())

    styles = loras.resolve(["cozy_style:0.8"], "lora", config_dirs=[folder])
    motions = loras.resolve(["zoom_in"], "motion_lora", config_dirs=[folder])
    assert styles[0][0].path.resolve() == (folder / "cozy_style.safetensors").resolve()
    assert motions[0][0].kind == "motion_lora" and motions[0][1] == 1.0
    apply_loras(pipe, styles, motions)
    assert sorted(w for _, w in loras.active_adapters(pipe)) == [0.8, 1.0]
    assert _diff(_render(pipe), world["base"]) > 1e-3

    apply_loras(pipe, loras.resolve(["cozy_style:0"], "lora", config_dirs=[folder]),
                loras.resolve(["zoom_in:0"], "motion_lora", config_dirs=[folder]))
    assert torch.equal(_render(pipe), world["base"])
    with pytest.raises(models.ModelError):
        loras.resolve(["no_such_lora:0.5"], "lora", config_dirs=[folder])


def test_loading_and_unloading_loras_leaves_the_base_model_as_it_was(world, pipe):
    # peft freezes the base weights when it loads an adapter; the requires_grad flag
    # decides which matmul kernel torch uses for some inputs, and on some CPUs (AMD) the
    # kernels round differently, so a frozen base would no longer give the base picture
    # bit for bit. The flags are checked as well as the picture, so that this fails on
    # every CPU when they change, not only on those whose kernels differ.
    def base_params():
        return [param for component in ("unet", "text_encoder", "vae")
                for name, param in getattr(pipe, component).named_parameters() if "lora_" not in name]

    before = [(param, param.requires_grad, param.detach().clone()) for param in base_params()]

    def same_as_before():
        # the same parameters (peft moves a wrapped layer under .base_layer, not a copy),
        # with the same values and the same flags
        assert {id(p) for p in base_params()} == {id(p) for p, _, _ in before}
        for param, flag, value in before:
            assert param.requires_grad == flag and torch.equal(param.detach(), value)

    apply_loras(pipe, [style(world, "style", 0.0)], [motion(world, "zoom", 0.0)])
    same_as_before()
    apply_loras(pipe, [style(world, "style", 0.7)], [motion(world, "zoom", 1.2)])
    fuse(pipe)
    apply_loras(pipe, [], [])
    same_as_before()
    loras.unload_all(pipe)
    same_as_before()
    assert torch.equal(_render(pipe), world["base"])


def test_unfusing_restores_every_text_encoder_of_an_sdxl_pipeline(tmp_path):
    # SDXL has a second text encoder; a style LoRA on it is merged by fuse like the rest
    # and must come back bit for bit too (subtracting the merge would leave rounding).
    from diffusers import AnimateDiffSDXLPipeline

    zoo = tmp_path / "zoo"
    sdxl = models.load_pipeline(models.describe(tiny_models.tiny_sdxl_pipeline_dir(zoo)),
                                models.describe(tiny_models.tiny_sdxl_motion_adapter_dir(zoo)),
                                "cpu", torch.float32)
    path = tmp_path / "xl" / "xl_style.safetensors"
    AnimateDiffSDXLPipeline.save_lora_weights(
        path.parent, weight_name=path.name,
        unet_lora_layers=_peft_lora(sdxl.unet, SPATIAL, seed=5),
        text_encoder_lora_layers=_peft_lora(sdxl.text_encoder, TEXT, seed=6),
        text_encoder_2_lora_layers=_peft_lora(sdxl.text_encoder_2, TEXT, seed=7))
    def base_weights(part):
        # peft's wrapper moves a layer's weight under .base_layer: name it as before
        return {k.replace(".base_layer", ""): v.clone() for k, v in getattr(sdxl, part).state_dict().items()
                if "lora_" not in k}

    before = {part: base_weights(part) for part in ("unet", "text_encoder", "text_encoder_2")}
    apply_loras(sdxl, [(ModelRef("lora", path, "xl_style", "peft"), 0.9)], [])
    assert fuse(sdxl) is True
    merged = base_weights("text_encoder_2")
    assert any(not torch.equal(merged[k], v) for k, v in before["text_encoder_2"].items())
    assert unfuse(sdxl) is True
    for part, want in before.items():
        got = base_weights(part)
        assert [k for k, v in want.items() if not torch.equal(got[k], v)] == [], part  # copied back
