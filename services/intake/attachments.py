"""Attachments (giấy tờ đính kèm), kept in intake's own database with GridFS.

Why GridFS: the files stay in the database intake already owns and backs up, with no second
server to run or secure; it works the same on MongoDB and on FerretDB; files are written in
255 KiB chunks, so a scanned document never meets the 16 MiB document limit. Each file keeps
its SHA-256, size, media type and declared document type.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from services.intake.catalogue import Procedure
from services.intake.messages import entry
from shared.clock import utcnow
from shared.storage import Document


class AttachmentStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name="attachments")
        self.files = db["attachments.files"]

    async def put(self, data: bytes, *, media_type: str, document_type: str) -> dict[str, Any]:
        """Store one file; return what the citizen refers to it by."""
        digest = hashlib.sha256(data).hexdigest()
        metadata = {
            "sha256": digest,
            "media_type": media_type,
            "document_type": document_type,
            "uploaded_at": utcnow(),
        }
        file_id = await self.bucket.upload_from_stream(
            f"{document_type}-{digest[:12]}", data, metadata=metadata
        )
        return {
            "id": str(file_id),
            "document_type": document_type,
            "media_type": media_type,
            "size": len(data),
            "sha256": digest,
        }

    async def describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Size, media type and hash of the files among `ids` that exist."""
        found: dict[str, dict[str, Any]] = {}
        for raw in ids:
            try:
                oid = ObjectId(raw)
            except (InvalidId, TypeError):
                continue
            doc = await self.files.find_one({"_id": oid})
            if doc is not None:
                meta = doc.get("metadata", {})
                found[raw] = {
                    "id": raw,
                    "size": int(doc["length"]),
                    "media_type": meta.get("media_type"),
                    "sha256": meta.get("sha256"),
                }
        return found


def references(raw: Any, limit: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Parse `attachments` of a submission: ([{document_type, id}], errors)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [entry("attachments", "list_type")]
    if len(raw) > limit:
        return [], [entry("attachments", "too_long")]
    refs, errors = [], []
    for i, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or set(item) != {"document_type", "id"}
            or not all(isinstance(v, str) for v in item.values())
        ):
            errors.append(entry(f"attachments.{i}", "attachment_shape"))
            continue
        refs.append({"document_type": item["document_type"], "id": item["id"]})
    return refs, errors


def check(
    procedure: Procedure,
    refs: list[dict[str, str]],
    files: dict[str, dict[str, Any]],
    *,
    require: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The attachments as recorded on the dossier, and the errors: unknown files, documents
    the procedure does not take, wrong media types, files too large, required ones missing."""
    specs = {d.type: d for d in procedure.documents}
    recorded, errors = [], []
    for i, ref in enumerate(refs):
        spec = specs.get(ref["document_type"])
        meta = files.get(ref["id"])
        if spec is None:
            errors.append(entry(f"attachments.{i}.document_type", "unknown_document"))
        elif meta is None:
            errors.append(entry(f"attachments.{i}.id", "unknown_attachment"))
        elif meta["media_type"] not in spec.media_types:
            errors.append(entry(f"attachments.{i}.id", "media_type_not_allowed"))
        elif meta["size"] > spec.max_bytes:
            errors.append(entry(f"attachments.{i}.id", "attachment_too_large"))
        else:
            recorded.append({"document_type": spec.type, **meta})
    if require:
        given = {r["document_type"] for r in refs}
        for spec in procedure.documents:
            if spec.required and spec.type not in given:
                errors.append(entry(f"attachments[{spec.type}]", "missing_document"))
    return recorded, errors
