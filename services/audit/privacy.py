"""Personal identifiers in audit records: masked to their last 4 digits, plus a keyed hash.

An inspector must find every record of one citizen (exact lookup), but the audit database must
never hold a full personal ID number or phone number: a copy of it would leak them. So each one
is replaced by its last 4 digits behind a mask (what an officer reading a timeline needs to tell
two applicants apart) and an HMAC-SHA-256 under a secret key (the same identifier always gives
the same hash, which cannot be reversed without the key: 10^12 IDs are too few for a plain hash).

Besides the named fields, any free text is scrubbed of personal ID and mobile numbers however
they are written: a number is a run of digit groups joined by single spaces or dots (`001 099
012 345`, `0912.345.678`), wherever it stands (`số001099012345`, `CCCD_001099012345`). A run
of 12 digits or more is masked to its last 4, and so is any part of it that is a mobile number
(`0` and 9 digits, or `84` and 9 digits with or without `+`). Hex digests (32 hex digits or
more) and UUIDs are left alone. A 9-digit old ID (CMND) in free text is not recognised (too
many other numbers have 9 digits); as a named field (`old_id`) it is masked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

# Fields that hold an identifier wherever they appear in an event's data.
IDENTIFIER_FIELDS = ("personal_id", "phone", "old_id")
# Left as they are: a UUID, or a hex digest (32 hex digits or more).
_PROTECTED = re.compile(
    r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![0-9a-zA-Z])[0-9a-fA-F]{32,}(?![0-9a-zA-Z]))"
)
# Digit groups joined by single spaces or dots, with a `+` perhaps before them.
_NUMBER = re.compile(r"\+?\d+(?:[ .]\d+)*")
_MOBILE = re.compile(r"0[35789]\d{8}|84[35789]\d{8}")
SHORTEST_ID = 12


def mask(value: str) -> str:
    """`value` with every character but the last 4 replaced by `*`."""
    digits = value.strip()
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA-256 of the identifier (whitespace stripped), in hex."""
    return hmac.new(key, value.strip().encode(), hashlib.sha256).hexdigest()


def scrub_text(text: str) -> str:
    """Free text with any personal ID or phone number in it masked."""
    parts = _PROTECTED.split(text)
    # split() keeps the protected spans at odd places.
    return "".join(p if i % 2 else _NUMBER.sub(_scrub_number, p) for i, p in enumerate(parts))


def _scrub_number(match: re.Match[str]) -> str:
    number = match.group()
    groups = re.findall(r"\d+", number)
    digits = "".join(groups)
    if len(digits) >= SHORTEST_ID or _MOBILE.fullmatch(digits):
        return mask(("+" if number.startswith("+") else "") + digits)
    # A mobile number among other groups (`số 2 0912 345 678`): mask those groups only.
    for start in range(len(groups)):
        for end in range(start + 1, len(groups) + 1):
            if _MOBILE.fullmatch("".join(groups[start:end])):
                masked = mask("".join(groups[start:end]))
                kept = " ".join([*groups[:start], masked, *groups[end:]])
                return ("+" if number.startswith("+") else "") + kept
    return number


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


def without_keyed_hashes(value: Any) -> Any:
    """A copy of a record (or any JSON value) without its `*_hmac` fields: search and export
    show masked identifiers only, since an HMAC under a known key gives the full ID back."""
    if isinstance(value, dict):
        return {k: without_keyed_hashes(v) for k, v in value.items() if not k.endswith("_hmac")}
    if isinstance(value, list):
        return [without_keyed_hashes(v) for v in value]
    return value
