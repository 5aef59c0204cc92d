"""`python -m lofid.cli`."""

import sys

from . import main

sys.exit(main())
