"""The accessibility tester's tool: ``voicebot a11y report``.

It proves, for the menu the configuration names, that a caller who can only key and a
caller who can only speak both reach every node and complete every flow, in every
language, and measures what they hear on the way.

    caller.py    who calls (personas from the demo bank) and what they key or say
    calls.py     calls on text (the engine fed directly) and on audio (a file-mode call)
    explorer.py  the breadth-first search of the menu, by keys only or voice only
    prompts.py   each prompt: duration, pace, options, both modes announced (the rule)
    checks.py    the thresholds file (voicebot/data/a11y_checks.yaml) and the checks
    report.py    everything together: the report's data (JSON), written with the pictures
    figures.py   the menu tree (Graphviz) and the timelines (matplotlib), as SVG
    html.py      the self-contained HTML page
    commands.py  the command line

Nothing is imported here: `voicebot --help` must not load the dialog engine and its NLU.
"""
