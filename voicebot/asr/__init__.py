"""Speech: Vosk recognisers fed by a voice-activity detector, with a grammar per prompt."""
