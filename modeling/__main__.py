"""Entry point of ``python -m modeling`` (the training command line)."""

import sys

from modeling.training.cli import main

sys.exit(main())
