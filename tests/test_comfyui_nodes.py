"""The ComfyUI node pack (plugins/comfyui) as ComfyUI's loader uses it: the package
imported by path under its folder's name (nodes.load_custom_node), its mappings read,
INPUT_TYPES called, each node's FUNCTION run on IMAGE batches of ComfyUI's layout
[frames, H, W, 3] float 0..1 (torch CPU tensors, as ComfyUI passes them, and numpy);
`Send to lofid` against a running daemon; the example workflow read as ComfyUI reads it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import lofid, running, wait_for

PACK = Path(__file__).resolve().parent.parent / "plugins" / "comfyui"
WORKFLOW = PACK / "example_workflows" / "lofid_seamless_loop.json"


def load_custom_node(module_path: Path):
    """What ComfyUI's nodes.load_custom_node does with a folder in custom_nodes/: a
    module named after the folder, from its __init__.py, put in sys.modules, run."""
    name = os.path.basename(module_path)
    spec = importlib.util.spec_from_file_location(name, os.path.join(module_path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    # Installed as a user installs it: the folder in custom_nodes under its own name.
    custom = tmp_path_factory.mktemp("custom_nodes")
    (custom / "lofid-nodes").symlink_to(PACK, target_is_directory=True)
    module = load_custom_node(custom / "lofid-nodes")
    yield module
    sys.modules.pop("lofid-nodes", None)
    sys.modules.pop("lofid-nodes.nodes", None)


@pytest.fixture(scope="module")
def painted():
    """A seamless loop from lofid's painter, its uint8 frames."""
    from lofid import generators
    from lofid.scene import parse
    loop = generators.get("procedural")(parse("rainy night, coffee shop"), 5, (64, 48), 12, 12.0)
    return loop.frames


def as_image(frames):
    """uint8 frames as ComfyUI's IMAGE: a float32 torch tensor [frames, H, W, 3] in 0..1."""
    import torch
    return torch.from_numpy(frames.astype(np.float32) / 255.0)


def node(pack, name):
    cls = pack.NODE_CLASS_MAPPINGS[name]
    return cls, getattr(cls(), cls.FUNCTION)


def test_the_mappings_follow_comfyuis_conventions(pack):
    classes = pack.NODE_CLASS_MAPPINGS
    assert set(classes) == {"LofidSeamRatio", "LofidCloseLoop", "LofidPrompt", "SendToLofid"}
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["LofidSeamRatio"] == "lofid Seam Ratio"
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["SendToLofid"] == "Send to lofid"
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == set(classes)
    for name, cls in classes.items():
        types = cls.INPUT_TYPES()
        assert set(types) <= {"required", "optional", "hidden"} and types["required"], name
        for section in types.values():
            for input_name, spec in section.items():
                assert isinstance(spec, tuple) and isinstance(spec[0], (str, list)), input_name
                if len(spec) > 1:
                    assert isinstance(spec[1], dict)
        assert isinstance(cls.RETURN_TYPES, tuple)
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
        assert callable(getattr(cls, cls.FUNCTION)) and isinstance(cls.CATEGORY, str)
        # The function takes every input by its name, as ComfyUI calls it.
        import inspect
        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        for section in types.values():
            assert set(section) <= set(params), name
    assert classes["SendToLofid"].OUTPUT_NODE is True
    required = classes["SendToLofid"].INPUT_TYPES()["required"]
    assert list(required) == ["images", "prompt", "fps"]
    assert "play_now" in classes["SendToLofid"].INPUT_TYPES()["optional"]


def test_seam_ratio_gives_lofids_numbers_for_tensors_and_arrays(pack, painted):
    from lofid.loop import compute_metrics
    cls, measure = node(pack, "LofidSeamRatio")
    image = as_image(painted)
    out = measure(image)
    images, seam, motion, flicker, summary = out["result"]
    # Exact: frames / 255 * 255 rounds back to the same uint8 levels, and the metrics
    # are then the same computation on the same integers.
    assert (seam, motion, flicker) == tuple(compute_metrics(painted)[k]
                                            for k in ("seam_ratio", "motion", "flicker"))
    assert images is image and seam < 1.5 and motion > 0
    assert f"seam ratio {seam:.3f}" in summary and out["ui"]["text"] == [summary]
    assert measure(painted.astype(np.float32) / 255.0)["result"][1:4] == (seam, motion, flicker)


def test_close_loop_makes_a_jerky_clip_seamless(pack, painted):
    import torch
    from lofid.loop import compute_metrics
    # A clip that brightens steadily and never comes back: one big jump at its seam.
    clip = np.repeat(np.linspace(20, 200, 12).round().astype(np.uint8), 48 * 64 * 3)
    clip = clip.reshape(12, 48, 64, 3) ^ (painted & 7)   # and some texture
    jerky = compute_metrics(clip)["seam_ratio"]
    assert jerky > 5
    _, close = node(pack, "LofidCloseLoop")
    (closed,) = close(as_image(clip), overlap=3)
    assert isinstance(closed, torch.Tensor) and closed.dtype == torch.float32
    assert tuple(closed.shape) == (9, 48, 64, 3)
    _, measure = node(pack, "LofidSeamRatio")
    assert measure(closed)["result"][1] < 2
    (default,) = close(clip.astype(np.float32) / 255.0)      # overlap 0: a quarter
    assert isinstance(default, np.ndarray) and default.shape[0] == 12 - 3


def test_prompt_node_speaks_lofids_words(pack):
    _, prompts = node(pack, "LofidPrompt")
    positive, negative, scene = prompts("rainy night, coffee shop, jazz lofi")
    assert "coffee shop" in positive and "rain" in positive and "night" in positive
    assert "watermark" in negative and scene == "rainy night, coffee shop, jazz lofi"


def test_send_without_a_daemon_says_so(pack, painted, tmp_path):
    _, send = node(pack, "SendToLofid")
    with pytest.raises(RuntimeError, match="no lofid answers on .*none.sock"):
        send(as_image(painted), "study", 12.0, True, str(tmp_path / "none.sock"))


@pytest.mark.slow
def test_send_to_lofid_keeps_the_loop_and_plays_it(pack, painted, tmp_path):
    from lofid.loop import compute_metrics
    _, send = node(pack, "SendToLofid")
    with running(tmp_path, "-o", "null", "--realtime", "--size", "160x90",
                 "--scene", "study room", "--rotate", "600") as d:
        out = send(as_image(painted), "rainy night, coffee shop, jazz lofi", 12.0, True,
                   str(d.sock))
        (key,) = out["result"]
        assert key in out["ui"]["text"][0] and "playing now" in out["ui"]["text"][0]
        # Its loop is on the picture now.
        wait_for(lambda: d.status()["loop"] == key, timeout=30)
        assert d.status()["scene"]["scene"] == "coffee_shop"
        shown = lofid("--library", tmp_path / "lib", "library", "show", key)
        assert shown.returncode == 0, shown.stderr
        meta = json.loads(shown.stdout)
        expected = compute_metrics(painted)
        # Exact: PNG frames are lossless, so lofid measured the very frames sent.
        assert meta["metrics"] == {k: expected[k] for k in ("seam_ratio", "motion", "flicker")}
        assert (meta["n_frames"], meta["width"], meta["height"], meta["fps"]) == (12, 64, 48, 12.0)
        assert meta["generator"] == "comfyui" and meta["spec"]["weather"] == "rain"
        # A file that is not a loop is an error reply; the daemon goes on.
        (tmp_path / "junk.webm").write_text("not a video")
        from lofid.control.client import ControlError
        with pytest.raises(ControlError, match="junk.webm.*cannot be read as video"):
            d.call("library.add", str(tmp_path / "junk.webm"), "study", {})
        with pytest.raises(ControlError, match="fps must be a number"):
            d.call("library.add", str(tmp_path / "junk.webm"), "study", {"fps": 0})
        with pytest.raises(ControlError, match="relative path"):
            d.call("library.add", "junk.webm", "study")
        # `lofid library add --play` through the socket, a GIF made elsewhere.
        made = lofid("generate", "snowy winter evening, bedroom", "-o", tmp_path / "snow.gif",
                     "--size", "64x36", "--frames", "8", "--seed", "2", "--no-library")
        assert made.returncode == 0, made.stderr
        added = lofid("library", "add", tmp_path / "snow.gif", "--prompt", "snowy winter "
                      "evening, bedroom", "--play", "--socket", d.sock)
        assert added.returncode == 0, added.stderr
        new_key = added.stdout.split()[0]
        assert "playing now" in added.stdout and new_key != key
        wait_for(lambda: d.status()["loop"] == new_key, timeout=30)
        assert d.proc.poll() is None


def _links_of(workflow):
    return {link[0]: link for link in workflow["links"]}


def test_the_example_workflow_is_a_consistent_comfyui_graph(pack):
    wf = json.loads(WORKFLOW.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    links = _links_of(wf)
    assert len(nodes) == len(wf["nodes"]) and len(links) == len(wf["links"])
    assert wf["last_node_id"] == max(nodes) and wf["last_link_id"] == max(links)
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        into = nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and into["link"] == link_id
        assert out["type"] == into["type"] == kind, (link_id, out, into)
    for n in wf["nodes"]:
        for slot, into in enumerate(n.get("inputs", [])):
            if into["link"] is not None:
                assert links[into["link"]][3:5] == [n["id"], slot]
        for slot, out in enumerate(n.get("outputs", [])):
            for link_id in out["links"] or []:
                assert links[link_id][1:3] == [n["id"], slot]
    # Execution order respects every link.
    for _, src, _, dst, _, _ in wf["links"]:
        assert nodes[src]["order"] < nodes[dst]["order"]
    types = {n["type"] for n in wf["nodes"]}
    # AnimateDiff-Evolved's looped uniform context options, closed, feed its loader.
    assert {"ADE_LoopedUniformContextOptions", "ADE_AnimateDiffLoaderGen1", "KSampler",
            "VAEDecode", "LofidSeamRatio", "SendToLofid"} <= types
    ctx = next(n for n in wf["nodes"] if n["type"] == "ADE_LoopedUniformContextOptions")
    length, stride, overlap, closed_loop = ctx["widgets_values"][:4]
    assert closed_loop is True and overlap < length
    # The frames VAEDecode makes go through the seam check into lofid.
    def upstream(node_id, input_name):
        into = next(i for i in nodes[node_id]["inputs"] if i["name"] == input_name)
        return nodes[links[into["link"]][1]]
    send = next(n for n in wf["nodes"] if n["type"] == "SendToLofid")
    seam = upstream(send["id"], "images")
    assert seam["type"] == "LofidSeamRatio" and upstream(seam["id"], "images")["type"] == "VAEDecode"
    # Our nodes: their inputs and widget values fit INPUT_TYPES, outputs RETURN_TYPES.
    for n in wf["nodes"]:
        cls = pack.NODE_CLASS_MAPPINGS.get(n["type"])
        if cls is None:
            continue
        spec = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
        widgets = [k for k, v in spec.items() if v[0] in ("STRING", "FLOAT", "INT", "BOOLEAN")]
        assert len(n.get("widgets_values", [])) == len(widgets), n["type"]
        for into in n["inputs"]:
            kind = spec[into["name"]][0]
            assert into["type"] == kind
        assert [o["type"] for o in n["outputs"]] == list(cls.RETURN_TYPES)
        assert [o["name"] for o in n["outputs"]] == list(cls.RETURN_NAMES)
    # lofid understands the scene the workflow sends.
    from lofid.scene import parse
    prompt = next(n for n in wf["nodes"] if n["type"] == "LofidPrompt")["widgets_values"][0]
    assert parse(prompt).scene == "coffee_shop"
    # Its thumbnail: a PNG beside it, of the same name.
    from PIL import Image
    with Image.open(WORKFLOW.with_suffix(".png")) as thumb:
        assert thumb.format == "PNG" and min(thumb.size) >= 128


def test_the_registry_metadata(pack):
    try:
        import tomllib
    except ImportError:                  # Python 3.10
        import tomli as tomllib
    meta = tomllib.loads((PACK / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    assert project["name"] and "comfyui" not in project["name"].lower()
    assert len(project["version"].split(".")) == 3 and project["urls"]["Repository"]
    assert comfy["PublisherId"] and comfy["DisplayName"]


_LOAD = """
import importlib.util, os, sys, logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
{block}
path = sys.argv[1]
name = os.path.basename(path)
spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
print(sorted(module.NODE_CLASS_MAPPINGS))
print("torch" in sys.modules, "diffusers" in sys.modules)
"""

_BLOCK_LOFID = """
class NoLofid:
    def find_spec(self, name, path=None, target=None):
        if name == "lofid" or name.startswith("lofid."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoLofid())
"""


def _load_in_a_fresh_python(tmp_path, block=""):
    custom = tmp_path / "custom_nodes"
    custom.mkdir()
    (custom / "lofid-nodes").symlink_to(PACK, target_is_directory=True)
    return subprocess.run([sys.executable, "-c", _LOAD.format(block=block),
                           str(custom / "lofid-nodes")],
                          capture_output=True, text=True, timeout=60)


def test_loading_the_pack_imports_no_torch(tmp_path):
    r = _load_in_a_fresh_python(tmp_path)
    assert r.returncode == 0, r.stderr
    names, flags = r.stdout.splitlines()
    assert "SendToLofid" in names and flags == "False False"


def test_without_lofid_the_loader_gets_one_clear_message(tmp_path):
    r = _load_in_a_fresh_python(tmp_path, _BLOCK_LOFID)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.splitlines()[0] == "[]"
    warnings = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "lofid is not installed" in warnings[0], r.stderr
