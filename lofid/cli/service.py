"""`lofid service install`: the systemd user unit."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import BadInput

def cmd_service_install(args) -> int:
    """Write the user unit with the full path of this lofid, and say what to run."""
    import shutil

    from lofid import paths
    unit = Path(__file__).resolve().parents[2] / "systemd" / "lofid.service"
    if not unit.exists():
        raise BadInput(f"the unit file is missing from this installation ({unit})")
    exe = shutil.which("lofid") or str(Path(sys.argv[0]).resolve())
    text = unit.read_text().replace("ExecStart=lofid ", f"ExecStart={exe} ")
    target = paths.systemd_user_unit()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}\nnow run:\n  systemctl --user daemon-reload\n"
          f"  systemctl --user enable --now lofid\n  journalctl --user -u lofid -f")
    return 0
