"""The DTMF keypad: which two frequencies make each key, and levels in dBm0."""

from __future__ import annotations

import math

LOW_GROUP = (697, 770, 852, 941)
HIGH_GROUP = (1209, 1336, 1477, 1633)
FREQUENCIES = LOW_GROUP + HIGH_GROUP
KEYPAD = ("123A", "456B", "789C", "*0#D")  # rows: low group; columns: high group

KEY_FREQUENCIES: dict[str, tuple[int, int]] = {
    KEYPAD[row][col]: (LOW_GROUP[row], HIGH_GROUP[col]) for row in range(4) for col in range(4)
}
KEY_AT: dict[tuple[int, int], str] = {(row, col): KEYPAD[row][col] for row in range(4) for col in range(4)}

# G.711: a full-scale sine is +3.14 dBm0 (A-law; mu-law's 3.17 differs by less than the
# tolerance of any figure here), so 0 dBm0 is a sine of amplitude 10**(-3.14/20) full scale.
FULL_SCALE_SINE_DBM0 = 3.14


def dbm0_to_amplitude(level_dbm0: float) -> float:
    """Peak amplitude (full scale = 1.0) of a sine at ``level_dbm0``."""
    return 10 ** ((level_dbm0 - FULL_SCALE_SINE_DBM0) / 20)


def power_to_dbm0(power: float) -> float:
    """Level of a sine whose mean power (A**2/2, full scale = 1.0) is ``power``."""
    if power <= 0:
        return -math.inf
    return 10 * math.log10(2 * power) + FULL_SCALE_SINE_DBM0
