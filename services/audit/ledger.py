"""Tamper evidence, pure: hashes of records, each dossier's hash chain, Merkle seals, and the
checks that name the first broken link.

- Every hash is SHA-256 over the RFC 8785 canonical JSON (JCS) of a document, with datetimes
  written as UTC ISO-8601 to the millisecond (what MongoDB keeps), so a verifier in any language
  recomputes the same bytes.
- A chain link binds one record into its dossier's chain: (dossier, seq, record id, record
  hash, hash of the previous link, when it was settled). Links are separate immutable documents,
  written once: a record's place cannot be final when it arrives, since events may come out of
  order, so records are chained in a settling step once they are older than a grace window.
- A seal is an RFC 9162 Merkle tree over the hashes of every link settled in its period
  (ordered by settled time, then id); its body holds the root and the hash of the previous seal,
  and is signed with Ed25519. Its root, published outside the database, pins every link.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

GENESIS = "0" * 64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def jsonable(value: Any) -> Any:
    """`value` with datetimes as UTC ISO strings to the millisecond (and tuples as lists)."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON of `value`."""
    return rfc8785.dumps(jsonable(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `value`."""
    return hashlib.sha256(canonical(value)).hexdigest()


def to_millis(value: datetime) -> datetime:
    """`value` cut to the millisecond, as MongoDB will store it."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def record_hash(record: dict[str, Any]) -> str:
    """The hash of a stored record: every field of it, its `_id` included."""
    return digest(record)


# --- Pending markers -------------------------------------------------------------------------
#
# A record waits in `pending` until it is chained. Its marker carries a MAC of the record under
# a key derived from the audit HMAC key, so a record forged into the database (with a forged
# marker) or edited while it waits is refused by settling and named by verification. The MAC
# covers every field of the record but `recorded_at`: a redelivered event builds the same record
# with a later `recorded_at`, and must still match the marker its first delivery wrote.


def marker_key(hmac_key: bytes) -> bytes:
    """The key of pending markers' MACs, derived from the audit HMAC key."""
    return hmac.new(hmac_key, b"motcua-audit-pending-marker", hashlib.sha256).digest()


def marker_mac(key: bytes, record: dict[str, Any]) -> str:
    """The MAC (hex) a pending marker holds for `record`, under `marker_key(...)`."""
    body = {name: value for name, value in record.items() if name != "recorded_at"}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def marker_holds(key: bytes, marker: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether `marker` was written by audit for exactly this record."""
    mac = marker.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, marker_mac(key, record))


LINK_FIELDS = ("dossier_code", "seq", "record_id", "record_hash", "prev_hash", "settled_at")


def link_hash(link: dict[str, Any]) -> str:
    return digest({name: link[name] for name in LINK_FIELDS})


def make_link(
    *, dossier_code: str, seq: int, record: dict[str, Any], prev_hash: str, settled_at: datetime
) -> dict[str, Any]:
    """The chain link that appends `record` to its dossier's chain after `prev_hash`."""
    link: dict[str, Any] = {
        "_id": f"{dossier_code}#{seq}",
        "dossier_code": dossier_code,
        "seq": seq,
        "record_id": record["_id"],
        "record_hash": record_hash(record),
        "prev_hash": prev_hash,
        "settled_at": to_millis(settled_at),
    }
    link["hash"] = link_hash(link)
    return link


# --- Merkle trees (RFC 9162 §2.1) ---------------------------------------------------------


def leaf_hash(link_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(link_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def merkle_root(link_hashes: list[str]) -> str:
    """MTH of the leaves (hex); the hash of the empty string for none."""
    if not link_hashes:
        return hashlib.sha256(b"").hexdigest()
    return _root([leaf_hash(h) for h in link_hashes]).hex()


def _path(index: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), _root(leaves[k:])]
    return [*_path(index - k, leaves[k:]), _root(leaves[:k])]


def inclusion_path(index: int, link_hashes: list[str]) -> list[str]:
    """The audit path of leaf `index` (RFC 9162 §2.1.3.1), bottom up, hex."""
    return [h.hex() for h in _path(index, [leaf_hash(h) for h in link_hashes])]


# --- Seals --------------------------------------------------------------------------------

SEAL_FIELDS = (
    "seq",
    "period_start",
    "period_end",
    "count",
    "root",
    "prev_seal_hash",
    "sealed_at",
    "public_key",
)


def seal_body(seal: dict[str, Any]) -> bytes:
    """The canonical bytes that a seal's hash and signature cover."""
    return canonical({name: seal[name] for name in SEAL_FIELDS})


# --- Checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first thing found wrong: what kind, where, and in words."""

    kind: str  # modified | deleted | inserted | broken_link | bad_signature | unsealed
    detail: str
    dossier_code: str | None = None
    record_id: str | None = None
    seq: int | None = None
    seal: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def check_chain(
    dossier_code: str,
    records: dict[str, dict[str, Any]],
    links: list[dict[str, Any]],
    pending: dict[str, dict[str, Any]],
    marker_key: bytes,
) -> Break | None:
    """Walk one dossier's chain from its first link; records not chained must be pending,
    with a marker whose MAC (under `marker_key`) holds for them."""
    prev = GENESIS
    chained: set[str] = set()
    for expected, link in enumerate(sorted(links, key=lambda lk: int(lk["seq"]))):
        seq = int(link["seq"])
        rid = str(link.get("record_id"))
        if seq != expected:
            return Break(
                "deleted",
                f"link {expected} of the chain is missing (the next one is {seq})",
                dossier_code,
                seq=expected,
            )
        if link.get("hash") != link_hash(link):
            return Break("modified", f"link {seq} was altered", dossier_code, rid, seq)
        if link["prev_hash"] != prev:
            return Break(
                "broken_link", f"link {seq} does not follow link {seq - 1}", dossier_code, rid, seq
            )
        record = records.get(rid)
        if record is None:
            return Break("deleted", f"record {rid} (link {seq}) is gone", dossier_code, rid, seq)
        if record_hash(record) != link["record_hash"]:
            return Break(
                "modified", f"record {rid} (link {seq}) was modified", dossier_code, rid, seq
            )
        prev = link["hash"]
        chained.add(rid)
    for rid in sorted(set(records) - chained):
        marker = pending.get(rid)
        if marker is None or not marker.get("mac"):
            return Break(
                "inserted", f"record {rid} is in no chain and was never received", dossier_code, rid
            )
        if not marker_holds(marker_key, marker, records[rid]):
            return Break(
                "modified", f"record {rid} (not chained yet) was modified", dossier_code, rid
            )
    return None


def parse_expected_seal(text: str) -> tuple[int, str]:
    """`SEQ:HASH` (a seal's number and hex hash, as `/seals/latest` gives them) as a pair;
    ValueError when it is not that."""
    seq, sep, hash_hex = text.strip().partition(":")
    hash_hex = hash_hex.strip().lower()
    if not sep or not seq.strip().isdigit() or len(hash_hex) != 64:
        raise ValueError(f"not SEQ:HASH (a seal number, a colon, 64 hex digits): {text!r}")
    int(hash_hex, 16)
    return int(seq), hash_hex


def check_seal_leaves(seal: dict[str, Any], link_hashes: list[str]) -> Break | None:
    """Whether the links now in a seal's period are exactly those it sealed."""
    seq = int(seal["seq"])
    if merkle_root(link_hashes) == seal["root"]:
        return None
    count = int(seal["count"])
    if len(link_hashes) < count:
        kind, what = "deleted", f"{count - len(link_hashes)} sealed link(s) are gone"
    elif len(link_hashes) > count:
        kind, what = "inserted", f"{len(link_hashes) - count} link(s) were added"
    else:
        kind, what = "modified", "a sealed link was changed"
    return Break(kind, f"seal {seq}: {what} (its Merkle root no longer matches)", seal=seq)
