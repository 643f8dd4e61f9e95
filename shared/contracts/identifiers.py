"""Identifiers and free text as the administrative APIs accept them, defined once.

Identifiers (officer, unit, partner, endpoint ids) are what other records point at and what
operators type on a command line: a letter or digit, then up to 63 letters, digits, dots,
underscores or hyphens (`CAP-BADINH`, `cb-badinh-01`, `PC06-HN`). No control character, no
space, no other Unicode: a fuzz run once stored officers named `"®𛿤𠄕\\u0002*_Ó"`.

Free text (names, descriptions, reasons) is normalised to NFC (so `Đ` typed on two keyboards
compares equal) and refuses control characters; `MultilineText` allows tabs and newlines
where a multi-line text is legitimate (a reason, a description). `Text` also refuses a
blank value; `MultilineText` leaves emptiness to the field's own `min_length`.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

__all__ = [
    "IDENTIFIER_PATTERN",
    "EndpointId",
    "Identifier",
    "MultilineText",
    "OfficerId",
    "PartnerId",
    "Text",
    "UnitId",
    "clean_text",
]

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Identifier = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=64),
    Field(description="A letter or digit, then up to 63 of A-Z a-z 0-9 . _ -"),
]
OfficerId = Identifier
UnitId = Identifier
PartnerId = Identifier
EndpointId = Identifier


def _is_control(ch: str, allowed: str) -> bool:
    # Cc (C0/C1 controls), Cf (format: bidi overrides, zero-width), Cs (lone surrogates),
    # Co/Cn (private use, unassigned) have no place in a name or a reason.
    return ch not in allowed and unicodedata.category(ch)[0] == "C"


def clean_text(value: object, *, allowed: str = "") -> object:
    """NFC-normalised `value` if it is a string without control characters (but `allowed`);
    ValueError otherwise. Non-strings pass through for pydantic to refuse."""
    if not isinstance(value, str):
        return value
    text = unicodedata.normalize("NFC", value)
    bad = next((ch for ch in text if _is_control(ch, allowed)), None)
    if bad is not None:
        raise ValueError(f"text holds a control character (U+{ord(bad):04X})")
    return text


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("text is blank")
    return value


Text = Annotated[
    str,
    BeforeValidator(clean_text),
    AfterValidator(_not_blank),
    Field(description="One line of text, normalised to NFC, without control characters."),
]
MultilineText = Annotated[
    str,
    BeforeValidator(lambda v: clean_text(v, allowed="\t\n\r")),
    Field(description="Text, normalised to NFC, without control characters but tab/newline."),
]
