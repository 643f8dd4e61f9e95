"""Personal identifiers in audit records: masked to their last 4 digits, plus a keyed hash.

An inspector must find every record of one citizen (exact lookup), but the audit database must
never hold a full personal ID number or phone number: a copy of it would leak them. So each one
is replaced by its last 4 digits behind a mask (what an officer reading a timeline needs to tell
two applicants apart) and an HMAC-SHA-256 under a secret key (the same identifier always gives
the same hash, which cannot be reversed without the key: 10^12 IDs are too few for a plain hash).

Besides the named fields, any free text is scrubbed of runs of 12 digits (a personal ID typed
into a note or an address) and of Vietnamese mobile numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

# Fields that hold an identifier wherever they appear in an event's data.
IDENTIFIER_FIELDS = ("personal_id", "phone")
# A standalone run of 12 digits (not part of a hex digest or a UUID).
_TWELVE_DIGITS = re.compile(r"(?<![\w-])\d{12}(?![\w-])")
# A Vietnamese mobile number in +84 or 0 form (9 digits after the prefix).
_PHONE = re.compile(r"(?<![\w+])(?:\+84|0)\d{9}(?![\w-])")


def mask(value: str) -> str:
    """`value` with every character but the last 4 replaced by `*`."""
    digits = value.strip()
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA-256 of the identifier (whitespace stripped), in hex."""
    return hmac.new(key, value.strip().encode(), hashlib.sha256).hexdigest()


def scrub_text(text: str) -> str:
    """Free text with any personal ID or phone number in it masked."""
    text = _TWELVE_DIGITS.sub(lambda m: mask(m.group()), text)
    return _PHONE.sub(lambda m: mask(m.group()), text)


def scrub(value: Any, key: bytes) -> Any:
    """A copy of a JSON value with identifiers masked; each identifier field `f` gains a
    sibling `f_hmac` with its keyed hash."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if name in IDENTIFIER_FIELDS and isinstance(item, str):
                out[name] = mask(item)
                out[f"{name}_hmac"] = keyed_hash(item, key)
            else:
                out[name] = scrub(item, key)
        return out
    if isinstance(value, list):
        return [scrub(item, key) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value
