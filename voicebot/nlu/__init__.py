"""What a caller says (or types) turned into what the dialog engine can act on.

This is the first, rule-based version: phrases and entity values come from the Rasa-format
training data in ``nlu_data/`` and from the options of the menu; numbers are read with
``text2num``. The speech issue replaces the matching with a trained model over the same data.
"""

from .interpreter import TextInterpreter, Understanding, normalise

__all__ = ["TextInterpreter", "Understanding", "normalise"]
