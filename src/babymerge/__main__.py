"""``python -m babymerge`` is the ``babymerge`` command (handy under ``torchrun``)."""

import sys

from .cli import main

sys.exit(main())
