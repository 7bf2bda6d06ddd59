"""``python -m cqrs_lab.bench``: the same as ``cqrs-lab bench``."""

import sys

from cqrs_lab.bench.cli import main

sys.exit(main())
