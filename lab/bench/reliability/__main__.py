"""`python -m lab.bench.reliability [--quick] [--scenario NAME] [--write PATH]`."""
import sys

from .report import main

sys.exit(main())
