"""voicebot: an offline voice-and-keypad phone line for unlocking bank credentials.

The pieces, from the inside out:

- ``voicebot.menu``     the unlock menu tree, read from YAML into one typed model;
- ``voicebot.dialog``   the sans-I/O dialog engine: ``feed(event) -> list[command]``;
- ``voicebot.nlu``      turns what a caller says (or types) into menu choices, digits, commands;
- ``voicebot.backends`` banking, SMS, e-mail and agent transfer behind small interfaces;
- ``voicebot.actions``  the backend steps the engine asks for, run by the host;
- ``voicebot.transports`` the hosts that run a call over a concrete medium (the console today).
"""

__version__ = "0.1.0"
