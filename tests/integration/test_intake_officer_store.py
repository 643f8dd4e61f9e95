"""What intake keeps for officers, against the real MongoDB-wire server: the receiving unit
learnt from review's events (guarded keyed writes), and a stored document read back only if
its bytes still match the SHA-256 recorded at upload."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from bson import Binary, ObjectId
from pymongo import AsyncMongoClient

from services.intake.attachments import CHUNK_BYTES, AttachmentStore, CorruptAttachment
from services.intake.domain import Dossier
from services.intake.status import Step
from services.intake.store import DossierStore, create_indexes
from shared.contracts import Channel, Event
from shared.storage import Document
from tests.conftest import Isolation
from tests.factories import submitted_event

pytestmark = pytest.mark.integration


async def _nowhere(event: Event) -> None:
    raise AssertionError("must not publish")


async def test_the_assignment_records_the_unit_and_only_a_later_holder_changes_it(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = DossierStore(mongo[isolation.database("intake")], _nowhere)
    t0 = datetime.now(UTC).replace(microsecond=0)

    def build(code: str) -> tuple[Dossier, list[Event]]:
        dossier = Dossier(
            code=code, procedure_code="1.004194", channel=Channel.ONLINE, submitted_at=t0, form={}
        )
        return dossier, [submitted_event(code=code)]

    dossier, _ = await store.add_new("G01.99", date(2026, 12, 1), build)
    code = dossier.code
    assert (await store.get(code) or dossier).unit_id is None
    assert await store.add_step(code, Step("e1", "assigned", t0), unit_id="CAP-BADINH")
    assert await store.add_step(code, Step("e1", "assigned", t0), unit_id="X") is False
    found = await store.get(code, with_outbox=False)
    assert found is not None and (found.unit_id, found.status) == ("CAP-BADINH", "assigned")
    assert await store.set_unit(code, "CAP-HOANKIEM", t0 + timedelta(minutes=10))
    assert await store.set_unit(code, "PC06-HN", t0 + timedelta(minutes=5)) is False  # older
    assert await store.set_unit("G01.99-261201-9999", "U", t0) is None
    found = await store.get(code)
    assert found is not None and found.unit_id == "CAP-HOANKIEM"
    assert found.status == "assigned" and found.version == 2  # the holder is no status step


async def test_a_document_with_a_corrupted_chunk_is_refused_not_read_back(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("intake")]
    await create_indexes(db)
    files = AttachmentStore(db)
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 3)  # three chunks
    stored = await files.put(data, media_type="image/png", document_type="photo")
    whole = await files.open(stored["id"])
    assert whole is not None and b"".join(whole.chunks) == data
    assert (whole.media_type, whole.size, whole.sha256) == (
        "image/png",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert [len(c) for c in whole.chunks] == [CHUNK_BYTES, CHUNK_BYTES, len(data) - 2 * CHUNK_BYTES]
    middle = {"files_id": ObjectId(stored["id"]), "n": 1}
    chunk = await db["attachments.chunks"].find_one(middle)
    assert chunk is not None
    flipped = bytearray(chunk["data"])
    flipped[100] ^= 0xFF  # one bit rot in the middle chunk, same length
    # Deleted and written again: nx-27017 0.8.1's GridFS tables match no update or replace.
    await db["attachments.chunks"].delete_one(middle)
    await db["attachments.chunks"].insert_one({**middle, "data": Binary(bytes(flipped))})
    with pytest.raises(CorruptAttachment) as caught:
        await files.open(stored["id"])
    assert caught.value.expected == stored["sha256"] and caught.value.found != stored["sha256"]
    with pytest.raises(CorruptAttachment):
        await files.read(stored["id"])
    assert await files.open("0" * 24) is None and await files.open("not-an-id") is None
