"""``python -m assimilate.cli``: the ``assimilate`` command."""

import sys

from assimilate.cli import main

sys.exit(main())
