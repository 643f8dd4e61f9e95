"""Officers' reads of a dossier at intake: its documents listed, and one served back, each for
officers of its receiving unit only. They depend on the ports only."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from services.intake.attachments import CorruptAttachment, StoredFile
from services.intake.domain import Dossier, UnknownDossier
from services.intake.officers import (
    CorruptDocument,
    Document,
    UnknownDocument,
    check_reader,
    documents_of,
)
from services.intake.ports import Attachments, Dossiers, Procedures
from shared import auth

log = logging.getLogger(__name__)


async def _readable(code: str, officer: auth.OfficerClaims, dossiers: Dossiers) -> Dossier:
    dossier = await dossiers.get(code)
    if dossier is None:
        raise UnknownDossier(code)
    check_reader(dossier, officer)
    return dossier


async def documents(
    code: str,
    officer: auth.OfficerClaims,
    *,
    dossiers: Dossiers,
    files: Attachments,
    catalogue: Procedures,
) -> tuple[Dossier, list[Document]]:
    """The dossier and its documents (two keyed reads: the dossier, its files' upload times)."""
    dossier = await _readable(code, officer, dossiers)
    listed = documents_of(dossier, catalogue.get(dossier.procedure_code))
    stored = await files.describe([d.id for d in listed]) if listed else {}
    return dossier, [replace(d, uploaded_at=_moment(stored.get(d.id))) for d in listed]


async def document(
    code: str,
    document_id: str,
    officer: auth.OfficerClaims,
    *,
    dossiers: Dossiers,
    files: Attachments,
    catalogue: Procedures,
) -> tuple[Document, StoredFile]:
    """One document of the dossier with its bytes, checked against the SHA-256 the dossier
    recorded (CorruptDocument, and an error logged, if they differ: never served)."""
    dossier = await _readable(code, officer, dossiers)
    listed = documents_of(dossier, catalogue.get(dossier.procedure_code))
    wanted = next((d for d in listed if d.id == document_id), None)
    if wanted is None:
        raise UnknownDocument(f"dossier {code} holds no document {document_id}")
    try:
        stored = await files.open(document_id)
    except CorruptAttachment as exc:
        log.error(
            "stored document does not match its SHA-256: not served",
            extra={"dossier": code, "document": document_id, "expected": exc.expected},
        )
        raise CorruptDocument(document_id) from exc
    if stored is None:
        log.error("a document of the dossier has no stored file", extra={"dossier": code})
        raise UnknownDocument(f"the file of document {document_id} is not stored")
    if stored.sha256 != wanted.sha256:  # the file is whole, but not the one the dossier names
        log.error(
            "stored document is not the one the dossier recorded: not served",
            extra={"dossier": code, "document": document_id, "expected": wanted.sha256},
        )
        raise CorruptDocument(document_id)
    return wanted, stored


def _moment(described: dict[str, object] | None) -> datetime | None:
    raw = (described or {}).get("uploaded_at")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else None
