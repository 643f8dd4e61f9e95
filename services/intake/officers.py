"""What officers read of a dossier at intake, as pure rules: who may read its documents, and
which documents it holds (those submitted, then those each supplement added)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.intake.catalogue import Procedure
from services.intake.domain import DomainError, Dossier
from shared import auth
from shared.contracts import DossierSupplemented


class NoAccess(DomainError):
    """The officer is not of the unit that receives the dossier."""


class NotAssigned(NoAccess):
    """No unit receives the dossier yet (review's assignment has not arrived)."""


class UnknownDocument(DomainError):
    """The dossier holds no document with this id (or its file is gone)."""


class CorruptDocument(DomainError):
    """The stored bytes no longer match the SHA-256 recorded at upload."""


def check_reader(dossier: Dossier, officer: auth.OfficerClaims) -> None:
    """Officers of the dossier's receiving unit read it (whatever their role); NoAccess
    otherwise. (shared/roles.py names no province-wide reader.)"""
    if dossier.unit_id is None:
        raise NotAssigned(f"dossier {dossier.code} is not assigned to a unit yet")
    if officer.unit != dossier.unit_id:
        raise NoAccess(f"dossier {dossier.code} is received by {dossier.unit_id}")


@dataclass(frozen=True)
class Document:
    """One document of a dossier as an officer sees it listed."""

    id: str
    kind: str  # the procedure's document type
    name: str  # its Vietnamese name in the catalogue (the type if the catalogue has none)
    name_en: str
    content_type: str
    size: int
    sha256: str
    added_at: datetime  # when the dossier received it: its submission, or a supplement
    source: str  # "submission" or "supplement"
    uploaded_at: datetime | None = None  # when the file itself was uploaded


def documents_of(dossier: Dossier, procedure: Procedure | None) -> list[Document]:
    """The documents a dossier holds, in the order it received them."""
    specs = {d.type: d for d in procedure.documents} if procedure else {}
    listed: list[tuple[dict[str, Any], datetime, str]] = [
        (a, dossier.submitted_at, "submission") for a in dossier.attachments
    ]
    for event in dossier.outbox or ():
        if event.get("type") == DossierSupplemented.event_type:
            data = event.get("data") or {}
            at = datetime.fromisoformat(str(data.get("supplemented_at")))
            listed += [(a, at, "supplement") for a in data.get("documents") or []]
    found: list[Document] = []
    for attachment, at, source in listed:
        kind = str(attachment.get("document_type"))
        spec = specs.get(kind)
        found.append(
            Document(
                id=str(attachment["id"]),
                kind=kind,
                name=spec.name_vi if spec else kind,
                name_en=spec.name_en if spec else kind,
                content_type=str(attachment.get("media_type")),
                size=int(attachment.get("size") or 0),
                sha256=str(attachment.get("sha256")),
                added_at=at,
                source=source,
            )
        )
    return found
