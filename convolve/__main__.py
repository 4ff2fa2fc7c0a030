import sys

from convolve.cli import main

sys.exit(main())
