"""Hosts that run a call over one medium: one module per transport.

``console`` — the person at the terminal (or a script on standard input) is the caller.
The WAV-file, headset and SIP transports follow the same loop over the same engine.
"""
