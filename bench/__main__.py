"""``python -m bench --url http://localhost:5001 --rows exercise_06_test.csv``."""

import sys

from bench.cli import main

sys.exit(main())
