"""Ed25519 keys that sign seals: the private key comes from settings (base64 of its 32-byte
seed); without one, a throwaway development key is generated, with a warning, so seals are
still signed but cannot be trusted across restarts."""

from __future__ import annotations

import base64
import logging

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

log = logging.getLogger(__name__)


def load_signing_key(seed_b64: str) -> Ed25519PrivateKey:
    """The key whose seed is `seed_b64`; a new one (with a warning) when it is empty."""
    if not seed_b64:
        log.warning(
            "MOTCUA_AUDIT_SIGNING_KEY is not set: seals are signed with a throwaway key; "
            "set one in production"
        )
        return Ed25519PrivateKey.generate()
    seed = base64.b64decode(seed_b64, validate=True)
    if len(seed) != 32:
        raise ValueError("MOTCUA_AUDIT_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def signature_holds(public_key_hex: str, signature_hex: str, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(
            bytes.fromhex(signature_hex), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True
