"""Spanish identity documents (DNI, NIE): parsing what a caller keyed or said, and the checksum.

Pure functions, used by the dialog engine to validate an entry and by the banks to look it up.
"""

from __future__ import annotations

import unicodedata

import enum
from dataclasses import dataclass

from .masking import mask_tail

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
NIE_PREFIX_DIGIT = {"X": "0", "Y": "1", "Z": "2"}


class DocumentType(enum.StrEnum):
    DNI = "dni"
    NIE = "nie"


@dataclass(frozen=True)
class Document:
    """A Spanish identity document, always held in its full form with the control letter."""

    type: DocumentType
    number: str  # e.g. "12345678Z", "X1234567L"

    @classmethod
    def parse(cls, type: DocumentType | str, text: str) -> "Document":
        """Build from what a caller keyed or said; raises ``ValueError`` if it is not valid.

        DNI: 8 digits, optional control letter (checked when given).
        NIE: X/Y/Z (or its key 0/1/2) then 7 digits, optional control letter (checked).
        """
        type = DocumentType(type)
        # Any decimal digit (fullwidth, Arabic-Indic…) counts as its ASCII digit: the bank
        # stores ASCII, and "１２" typed on a phone's keyboard means 12.
        text = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in "".join(text.split()))
        text = text.upper().replace("-", "")
        if type is DocumentType.NIE:
            if text[:1] in NIE_PREFIX_DIGIT:
                text = NIE_PREFIX_DIGIT[text[0]] + text[1:]
            if len(text) < 8 or not text[:8].isdigit() or text[0] not in "012":
                raise ValueError("a NIE is X, Y or Z (keys 0, 1, 2) and 7 digits")
            digits, given = text[:8], text[8:]
            if len(given) > 1 or given.isdigit():
                raise ValueError("a NIE is X, Y or Z (keys 0, 1, 2) and 7 digits")
            prefix = "XYZ"[int(digits[0])]
            body = prefix + digits[1:]
        else:
            if len(text) < 8 or not text[:8].isdigit():
                raise ValueError("a DNI is 8 digits")
            digits, given = text[:8], text[8:]
            if len(given) > 1 or given.isdigit():
                raise ValueError("a DNI is 8 digits")
            body = digits
        letter = DNI_LETTERS[int(digits) % 23]
        if given and given != letter:
            raise ValueError("the control letter does not match the number")
        return cls(type, body + letter)

    def masked(self) -> str:
        return mask_tail(self.number)
