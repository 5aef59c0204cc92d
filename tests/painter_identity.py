"""Are the painter's frames byte-identical between a git revision and this tree?

    python tests/painter_identity.py OLD_REV

Exports lofid/ of OLD_REV into a temporary folder, renders every case of
painter_cases.cases(full=True) (every scene in every weather, time of day and season,
every motion on every scene, two sizes, a still image) with the old code and with
this tree's, each in its own process on this machine, and compares the sha256 of
each case's frames. Exit status 0 when all are identical, 1 otherwise.

Exact comparison is only meaningful on one machine (numpy's transcendental kernels
differ between CPUs); tests/test_painter_pictures.py is the check that travels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _hashes() -> dict[str, str]:
    sys.path.insert(0, str(HERE))
    from painter_cases import cases, digest, frames_of

    return {name: digest(frames_of(case)) for name, case in cases(full=True).items()}


def _run(code_root: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    out = subprocess.run([sys.executable, __file__, "--hashes"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main(rev: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "old.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "lofid"],
                       check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp)
        old = _run(Path(tmp))
    new = _run(ROOT)
    differ = [name for name in old if old[name] != new.get(name)]
    for name in differ:
        print(f"DIFFERENT  {name}")
    print(f"{len(old) - len(differ)} of {len(old)} cases byte-identical between {rev} "
          f"and {ROOT}")
    return 1 if differ or set(old) != set(new) else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--hashes"]:
        print(json.dumps(_hashes()))
    elif len(sys.argv) == 2:
        sys.exit(main(sys.argv[1]))
    else:
        sys.exit("usage: python tests/painter_identity.py OLD_REV")
