"""``python -m fine_tune_ckpt`` runs the ``fine-tune-ckpt`` command."""

import sys

from ._cli import main

sys.exit(main())
