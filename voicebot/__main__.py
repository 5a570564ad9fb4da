"""``python -m voicebot``: the same as the ``voicebot`` command."""

import sys

from .cli import main

sys.exit(main())
