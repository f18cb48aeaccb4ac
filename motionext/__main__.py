"""`python -m motionext ...` (and `torchrun ... -m motionext train ...`) is the `motionext` command."""

import sys

from .cli import main

sys.exit(main())
