"""Attachments (giấy tờ đính kèm), kept in intake's own database in GridFS's layout.

Why GridFS: the files stay in the database intake already owns and backs up, with no second
server to run or secure; files are cut into 255 KiB chunks, so a scanned document never meets
the 16 MiB document limit, and any GridFS reader (the driver's bucket, `mongofiles`) reads them.
Each file keeps its SHA-256, size, media type and declared document type.

The documents are written here rather than through the driver's `GridFSBucket`, for three reasons:
- the bucket's upload first sends two unfiltered `find_one`s (to decide whether to create its
  indexes), a collection scan per upload that no declared index serves; here an upload is two
  writes (the chunks, then the file), the indexes are declared in `store.INDEXES`;
- nx-27017's GridFS defect: it refuses a file whose `metadata` holds a `datetime` ("Object of type
  datetime is not JSON serializable") and returns `uploadDate` as a string. So the upload time
  is kept in `metadata.uploaded_at` as an ISO 8601 string, and nothing reads `uploadDate`;
- the file document is written last, once every chunk is stored: a partial upload is never a
  visible attachment (its orphan chunks are removed, or stay unreachable if the process died).
  nx-27017 0.8.1 also makes a placeholder file document (no metadata, length 0) as soon as a
  chunk is written, and keeps it when the chunks are deleted: so a file counts only with the
  SHA-256 this adapter records in its metadata, and a failed upload deletes its file too.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import Binary, ObjectId
from bson.errors import InvalidId
from pymongo.asynchronous.database import AsyncDatabase

from shared.clock import utcnow
from shared.storage import Document

BUCKET = "attachments"
CHUNK_BYTES = 255 * 1024  # GridFS's default chunk size


class AttachmentStore:
    """Files in GridFS's layout: `attachments.chunks` (files_id, n, data), `attachments.files`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.files = db[f"{BUCKET}.files"]
        self.chunks = db[f"{BUCKET}.chunks"]

    async def put(
        self, data: bytes, *, media_type: str, document_type: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """Store one file (two writes); return what the citizen refers to it by."""
        digest = hashlib.sha256(data).hexdigest()
        file_id = ObjectId()
        chunks = [
            {"files_id": file_id, "n": n, "data": Binary(data[at : at + CHUNK_BYTES])}
            for n, at in enumerate(range(0, len(data), CHUNK_BYTES))
        ]
        uploaded = now or utcnow()
        try:
            if chunks:
                await self.chunks.insert_many(chunks, ordered=True)
            await self.files.insert_one(
                {
                    "_id": file_id,
                    "length": len(data),
                    "chunkSize": CHUNK_BYTES,
                    "uploadDate": uploaded,
                    "filename": f"{document_type}-{digest[:12]}",
                    "metadata": {
                        "sha256": digest,
                        "media_type": media_type,
                        "document_type": document_type,
                        "uploaded_at": uploaded.isoformat(),  # never a datetime: see above
                    },
                }
            )
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: unreachable without the file
                await self.chunks.delete_many({"files_id": file_id})
                await self.files.delete_one({"_id": file_id})
            raise
        return {
            "id": str(file_id),
            "document_type": document_type,
            "media_type": media_type,
            "size": len(data),
            "sha256": digest,
        }

    async def describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Size, media type and hash of the files among `ids` that exist (one keyed query)."""
        wanted: dict[ObjectId, str] = {}
        for raw in ids:
            with contextlib.suppress(InvalidId, TypeError):
                wanted[ObjectId(raw)] = raw
        if not wanted:
            return {}
        found: dict[str, dict[str, Any]] = {}
        async for doc in self.files.find(
            {"_id": {"$in": list(wanted)}}, projection=["length", "metadata"]
        ):
            raw = wanted[doc["_id"]]
            meta = doc.get("metadata") or {}
            if not meta.get("sha256"):  # not (yet) a whole upload: see above
                continue
            found[raw] = {
                "id": raw,
                "size": int(doc["length"]),
                "media_type": meta.get("media_type"),
                "sha256": meta.get("sha256"),
                "uploaded_at": meta.get("uploaded_at"),
            }
        return found

    async def read(self, file_id: str) -> bytes | None:
        """The stored bytes of one file, checked against its SHA-256 (None if unknown)."""
        stored = await self.open(file_id)
        return b"".join(stored.chunks) if stored else None

    async def open(self, file_id: str) -> StoredFile | None:
        """One file's chunks, read in order and hashed as they come (two keyed reads), and
        returned only once their SHA-256 and length match what the upload recorded:
        CorruptAttachment otherwise. None if there is no such whole upload."""
        try:
            oid = ObjectId(file_id)
        except (InvalidId, TypeError):
            return None
        doc = await self.files.find_one({"_id": oid}, projection=["length", "metadata"])
        meta = (doc or {}).get("metadata") or {}
        if doc is None or not meta.get("sha256"):
            return None
        digest, chunks, size = hashlib.sha256(), [], 0
        async for chunk in self.chunks.find({"files_id": oid}).sort("n", 1):
            data = bytes(chunk["data"])
            digest.update(data)
            chunks.append(data)
            size += len(data)
        expected = str(meta["sha256"])
        if size != int(doc["length"]) or digest.hexdigest() != expected:
            raise CorruptAttachment(file_id, expected=expected, found=digest.hexdigest())
        return StoredFile(
            id=file_id,
            media_type=str(meta.get("media_type") or "application/octet-stream"),
            document_type=str(meta.get("document_type") or "document"),
            size=size,
            sha256=expected,
            chunks=tuple(chunks),
        )


@dataclass(frozen=True)
class StoredFile:
    """A stored file whose bytes matched the SHA-256 recorded at upload, in its chunks."""

    id: str
    media_type: str
    document_type: str
    size: int
    sha256: str
    chunks: tuple[bytes, ...]


class CorruptAttachment(Exception):
    """A stored file's bytes no longer match its recorded length or SHA-256."""

    def __init__(self, file_id: str, *, expected: str = "", found: str = "") -> None:
        super().__init__(file_id)
        self.file_id = file_id
        self.expected = expected
        self.found = found
