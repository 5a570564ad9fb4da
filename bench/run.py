"""`make bench`: every benchmark of the project, printed as tables.

Figures are medians over repeated runs (the machines are shared and noisy); compare
ratios, not absolute times.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHES = ["dialog", "dtmf", "asr", "onsets", "call", "sip", "security", "database", "cluster"]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for name in sys.argv[1:] or BENCHES:
        importlib.import_module(name).main()
