"""What a caller says (or types) turned into what the dialog engine can act on.

An intent classifier per language (:mod:`.classifier`: TF-IDF n-grams and a logistic
regression, trained at start-up) over the Rasa-format training data in ``nlu_data/``
(:mod:`.rasa_data`); the interpreter (:mod:`.interpreter`) adds universal commands,
entities (annotated phrases, synonyms, lookups), a spoken key and spoken or spelled numbers.
Typed and transcribed phrases take the same path.
"""

from .classifier import IntentClassifier, IntentGuess
from .interpreter import TextInterpreter, Understanding, normalise

__all__ = ["IntentClassifier", "IntentGuess", "TextInterpreter", "Understanding", "normalise"]
