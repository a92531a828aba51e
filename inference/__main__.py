"""``python -m inference --bundle models/NAME --port 8001 --metrics-port 8002``."""

import sys

from inference.server import main

sys.exit(main())
