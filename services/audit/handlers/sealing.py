"""Sealing: an Ed25519-signed Merkle seal over every link settled since the last seal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import ledger
from services.audit.domain import seal_body
from services.audit.ports import SealLog
from services.audit.signing import public_hex


async def seal(*, store: SealLog, key: Ed25519PrivateKey, now: datetime) -> dict[str, Any] | None:
    """Seal every link settled since the last seal up to `now` (none: no seal)."""
    last = await store.last_seal()
    end = ledger.to_millis(now)
    links = await store.links_settled(last["period_end"] if last else ledger.EPOCH, end)
    body = seal_body(last, [str(lk["hash"]) for lk in links], end, public_hex(key))
    if body is None:
        return None
    message = ledger.seal_body(body)
    doc = {
        "_id": body["seq"],
        **body,
        "hash": ledger.sha256_hex(message),
        "signature": key.sign(message).hex(),
    }
    return doc if await store.add_seal(doc) else None
