"""`python -m lofid ...` is the `lofid` command."""

from lofid.cli import main

raise SystemExit(main())
