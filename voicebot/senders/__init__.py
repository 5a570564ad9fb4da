"""Transports for the outbox: where its SMS and e-mails are handed over (see voicebot.outbox)."""
