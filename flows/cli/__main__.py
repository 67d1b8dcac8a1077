"""``python -m flows.cli``: the same as the ``salvage`` console script."""

import sys

from flows.cli.app import main

sys.exit(main())
