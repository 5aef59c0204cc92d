"""lofid nodes for ComfyUI: seamless lofi loops checked, closed and sent into lofid.

ComfyUI loads this folder from custom_nodes/ as a package and reads NODE_CLASS_MAPPINGS
and NODE_DISPLAY_NAME_MAPPINGS. The nodes use lofid's own loop code (numpy only at
import time: no torch, no diffusers). Where lofid is not installed in ComfyUI's Python,
the pack says so in one line and registers no nodes, and ComfyUI goes on loading.
"""

import logging

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

if __name__ == "lofid":
    # ComfyUI names a pack after its folder and puts it in sys.modules under that name:
    # a folder called "lofid" would hide the lofid package itself.
    logging.warning("[lofid nodes] this folder is named 'lofid', which hides the lofid "
                    "package from Python; rename it (e.g. custom_nodes/lofid-nodes) and "
                    "restart ComfyUI")
else:
    try:
        import lofid.loop  # noqa: F401  (numpy only; the nodes need it)
        import lofid.scene  # noqa: F401
    except ImportError as e:
        logging.warning("[lofid nodes] not loaded: lofid is not installed in ComfyUI's "
                        "Python (%s). Install it there (ComfyUI's python -m pip install "
                        "-e /path/to/lofi-vision) and restart ComfyUI", e)
    else:
        from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F811

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
