"""Banking, SMS, e-mail, agent transfer and call records behind small interfaces.

``base`` holds the interfaces (``typing.Protocol``) and the values they exchange; each has an
embedded default backed by one SQLite file (``sqlite``), so the line works on a fresh
machine. The dialog engine never imports this package: the host injects backends into the
actions it runs.
"""
