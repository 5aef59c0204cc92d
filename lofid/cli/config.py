"""`lofid config`: where the config file is, or a commented default one."""

from __future__ import annotations

import sys

def cmd_config(args) -> int:
    from lofid.settings.run import default_path, default_text
    if args.print_default:
        sys.stdout.write(default_text())
        return 0
    print(default_path())
    return 0
