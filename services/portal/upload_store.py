"""Unfinished uploads on the portal's local disk: `<id>.part` (the bytes received so far, its
size is the tus offset) and `<id>.json` (what the upload is, whose, until when).

The offset is the file's size, so it is always what was really written: bytes that arrived
before a connection dropped are kept, and the browser resumes after them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ID = re.compile(r"^[0-9a-f]{32}$")
SWEEP_EVERY = 60.0  # seconds between two sweeps of expired uploads


@dataclass(frozen=True)
class Upload:
    """One upload: its declared length and file, the session that owns it, and once sent to
    intake, the attachment intake made of it (or intake's refusal)."""

    id: str
    owner: str  # a hash of the session's upload key: another session's id is unknown to it
    length: int
    procedure: str
    document_type: str
    media_type: str
    filename: str
    expires_at: float
    attachment: dict[str, Any] | None = None
    refused: dict[str, Any] | None = None  # intake's problem (status, code, detail)
    metadata: dict[str, str] = field(default_factory=dict)


class TooLong(Exception):
    """A PATCH carried more bytes than the upload declared."""


class UploadStore:
    def __init__(self, folder: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.clock = clock
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._swept = 0.0

    def new_id(self) -> str:
        return secrets.token_hex(16)

    def _path(self, upload_id: str, suffix: str) -> Path:
        return self.folder / f"{upload_id}{suffix}"

    def create(self, upload: Upload) -> None:
        self._path(upload.id, ".part").touch(mode=0o600)
        self.save(upload)

    def save(self, upload: Upload) -> None:
        """Replace the upload's description at once (never half written)."""
        temporary = self._path(upload.id, ".json.tmp")
        temporary.write_text(json.dumps(asdict(upload)), encoding="utf-8")
        os.replace(temporary, self._path(upload.id, ".json"))

    def get(self, upload_id: str) -> Upload | None:
        if not ID.match(upload_id):
            return None
        try:
            raw = json.loads(self._path(upload_id, ".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return Upload(**raw)

    def offset(self, upload_id: str) -> int:
        try:
            return self._path(upload_id, ".part").stat().st_size
        except OSError:
            return 0

    async def append(self, upload: Upload, body: AsyncIterator[bytes]) -> int:
        """Write the body's bytes after those already kept, as they arrive; the new offset.
        A body longer than the upload's declared length is cut at it and raises TooLong."""
        room = upload.length - self.offset(upload.id)
        with self._path(upload.id, ".part").open("ab") as part:
            try:
                async for chunk in body:
                    if len(chunk) > room:
                        part.write(chunk[:room])
                        raise TooLong(upload.id)
                    part.write(chunk)
                    part.flush()  # what arrived counts even if the connection drops next
                    room -= len(chunk)
            finally:
                part.flush()
        return self.offset(upload.id)

    def read(self, upload_id: str) -> bytes:
        return self._path(upload_id, ".part").read_bytes()

    def finished(self, upload: Upload, **changes: Any) -> Upload:
        """Record the answer of intake; the bytes are no longer needed once it is a success."""
        done = replace(upload, **changes)
        self.save(done)
        if done.attachment is not None:
            with contextlib.suppress(OSError):
                self._path(upload.id, ".part").unlink()
        return done

    def delete(self, upload_id: str) -> None:
        for suffix in (".part", ".json", ".json.tmp"):
            with contextlib.suppress(OSError):
                self._path(upload_id, suffix).unlink()

    def expired(self, upload: Upload) -> bool:
        return upload.expires_at <= self.clock()

    def sweep(self) -> int:
        """Delete the expired uploads (at most once a minute); how many were deleted."""
        now = self.clock()
        if now - self._swept < SWEEP_EVERY:
            return 0
        self._swept, deleted = now, 0
        for described in self.folder.glob("*.json"):
            upload = self.get(described.stem)
            if upload is None or self.expired(upload):
                self.delete(described.stem)
                deleted += 1
        return deleted
