"""`python -m driftline.cli`: the same as the `driftline` command (the stack starts its services this way)."""

import sys

from driftline.cli.main import main

sys.exit(main())
