"""Calls on real audio: the session (engine, DTMF, speech, prompts) and one module per transport."""
