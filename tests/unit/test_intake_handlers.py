"""Every intake handler, with in-memory fakes of its ports (no network, no database)."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.intake import consumer, handlers
from services.intake.attachments import CorruptAttachment, StoredFile
from services.intake.catalogue import FormError
from services.intake.domain import (
    Busy,
    Dossier,
    EmptyFile,
    NotAllowedNow,
    NotIntakes,
    UnknownDossier,
    UnsupportedMedia,
    hash_secret,
)
from services.intake.handlers import Intake, Proof, Submit
from services.intake.idempotency import LEASE, KeyRecord, KeyReused, StillRunning, fingerprint
from services.intake.openapi import example
from services.intake.ports import FiledBefore
from services.intake.status import Step
from shared.calendar import WorkingCalendar
from shared.contracts import (
    Channel,
    DossierSubmitted,
    DossierSupplemented,
    DossierSupplementRequested,
    DossierSupplementRequestedData,
    DossierWithdrawn,
    Event,
)
from shared.messaging import PermanentFailure
from tests.factories import CATALOGUE, VALID_FORM, approved_event, submitted_event

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # a Tuesday morning in Hà Nội
PHONE = VALID_FORM["applicant"]["phone"]


@dataclass
class FakeDossiers:
    """The dossier store's port, in memory."""

    docs: dict[str, Dossier] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)  # codes stored before the series' counter
    conflicts: int = 0  # how many next saves lose to a concurrent write
    unit_since: dict[str, datetime] = field(default_factory=dict)

    async def next_number(self, series: str, day: date) -> int:
        self.counters[series] = self.counters.get(series, 0) + 1
        return self.counters[series]

    async def add(self, dossier: Dossier, events: list[Event], *, series: str, number: int) -> bool:
        if dossier.code in self.docs or dossier.code in self.taken:
            return False
        key = dossier.idempotency_key
        first = next((d for d in self.docs.values() if key and d.idempotency_key == key), None)
        if first is not None:  # the unique index on the key
            raise FiledBefore(first)
        self.docs[dossier.code] = replace(dossier, outbox=tuple(_json(events)))
        return True

    async def get(self, code: str, *, with_outbox: bool = True) -> Dossier | None:
        found = self.docs.get(code)
        return found if found is None or with_outbox else replace(found, outbox=None)

    async def by_idempotency_key(self, key: str) -> Dossier | None:
        return next((d for d in self.docs.values() if d.idempotency_key == key), None)

    async def save(self, dossier: Dossier, events: list[Event]) -> bool:
        stored = self.docs[dossier.code]
        if self.conflicts:
            self.conflicts -= 1
            self.docs[dossier.code] = replace(stored, version=stored.version + 1)
            return False
        if stored.version != dossier.version - 1:
            return False
        assert dossier.outbox is not None
        self.docs[dossier.code] = replace(dossier, outbox=dossier.outbox + tuple(_json(events)))
        return True

    async def add_step(self, code: str, step: Step, *, unit_id: str | None = None) -> bool | None:
        stored = self.docs.get(code)
        if stored is None:
            return None
        if any(s.event_id == step.event_id for s in stored.steps):
            return False
        self.docs[code] = stored.with_step(step)
        if unit_id is not None:
            self.docs[code] = replace(self.docs[code], unit_id=unit_id)
            self.unit_since[code] = step.at
        return True

    async def set_unit(self, code: str, unit_id: str, at: datetime) -> bool | None:
        stored = self.docs.get(code)
        if stored is None:
            return None
        if code in self.unit_since and self.unit_since[code] >= at:
            return False
        self.docs[code] = replace(stored, unit_id=unit_id)
        self.unit_since[code] = at
        return True


@dataclass
class FakeFiles:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)  # what is stored now

    async def put(self, data: bytes, *, media_type: str, document_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        file_id = f"{len(self.files):024x}"
        self.files[file_id] = {
            "id": file_id,
            "size": len(data),
            "media_type": media_type,
            "sha256": digest,
        }
        self.data[file_id] = data
        return {**self.files[file_id], "document_type": document_type}

    async def describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {
            i: {**self.files[i], "uploaded_at": "2026-12-01T01:59:00+00:00"}
            for i in ids
            if i in self.files
        }

    async def open(self, file_id: str) -> StoredFile | None:
        meta = self.files.get(file_id)
        if meta is None:
            return None
        data = self.data[file_id]
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise CorruptAttachment(file_id, expected=meta["sha256"])
        return StoredFile(file_id, meta["media_type"], "doc", len(data), meta["sha256"], (data,))


@dataclass
class FakeKeys:
    records: dict[str, KeyRecord] = field(default_factory=dict)

    async def claim(self, key: str, body_hash: str, now: datetime) -> bool:
        if key in self.records:
            return False
        self.records[key] = KeyRecord(key, body_hash, now)
        return True

    async def get(self, key: str) -> KeyRecord | None:
        return self.records.get(key)

    async def take_over(self, record: KeyRecord, now: datetime) -> bool:
        current = self.records[record.key]
        if current.lease != record.lease or current.answer is not None:
            return False
        self.records[record.key] = replace(current, claimed_at=now, lease=current.lease + 1)
        return True

    async def answer(self, key: str, answer: dict[str, Any], *, lease: int) -> bool:
        current = self.records[key]
        if current.lease != lease or current.answer is not None:
            return False
        self.records[key] = replace(current, answer=answer)
        return True


@dataclass
class Published:
    events: list[Event] = field(default_factory=list)
    broken: bool = False

    async def __call__(self, events: list[Event]) -> None:
        if self.broken:
            raise ConnectionError("broker away")
        self.events += events


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def _json(events: list[Event]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in events]


@pytest.fixture
def intake() -> Intake:
    return Intake(
        dossiers=FakeDossiers(),
        files=FakeFiles(),
        keys=FakeKeys(),
        catalogue=CATALOGUE,
        publish=Published(),
        calendar=WorkingCalendar(),
        clock=Clock(),
    )


def _published(intake: Intake) -> list[Event]:
    assert isinstance(intake.publish, Published)
    return intake.publish.events


def _dossiers(intake: Intake) -> FakeDossiers:
    assert isinstance(intake.dossiers, FakeDossiers)
    return intake.dossiers


async def _body(intake: Intake, form: dict[str, Any] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(form or VALID_FORM)
    procedure = CATALOGUE.procedures[body["procedure_code"]]
    refs = []
    for spec in [d for d in procedure.documents if d.required]:
        put = await intake.files.put(
            b"%PDF-1.4", media_type=spec.media_types[0], document_type=spec.type
        )
        refs.append({"document_type": spec.type, "id": put["id"]})
    return {**body, "attachments": refs}


def _key_hash(intake: Intake, body: dict[str, Any]) -> str:
    """What submit fingerprints: the body with its attachments named by their content."""
    files: Any = intake.files
    documents = [files.files[a["id"]] for a in body["attachments"]]
    return fingerprint(handlers.by_content(body, documents))


async def _submitted(intake: Intake) -> tuple[str, str]:
    answer, _ = await handlers.submit(Submit(await _body(intake)), intake=intake)
    return answer["code"], answer["access_secret"]


# submit


async def test_a_submission_gets_the_days_next_code_a_receipt_and_one_event(
    intake: Intake,
) -> None:
    body = await _body(intake)
    first, replayed = await handlers.submit(Submit(body), intake=intake)
    second, _ = await handlers.submit(Submit(body), intake=intake)
    assert not replayed
    assert (first["code"], second["code"]) == ("G01.99-261201-0001", "G01.99-261201-0002")
    assert first["status"] == "submitted" and first["status_code"] == 1
    assert first["access_secret"] and first["promised_at"] > first["received_at"]
    assert [d["document_type"] for d in first["documents"]] == [
        r["document_type"] for r in body["attachments"]
    ]
    [event, _] = _published(intake)
    assert isinstance(event, DossierSubmitted) and event.subject == first["code"]
    stored = _dossiers(intake).docs[first["code"]]
    assert stored.access.secret_sha256 == hash_secret(first["access_secret"])


async def test_every_submitted_event_carries_the_procedures_vietnamese_name(
    intake: Intake,
) -> None:
    for code in ("1.004194", "the-can-cuoc", "con-dau"):
        procedure = CATALOGUE.procedures[code]
        body = await _body(intake, example(procedure))
        await handlers.submit(Submit(body, channel=Channel(procedure.channels[-1])), intake=intake)
        event = _published(intake)[-1]
        assert isinstance(event, DossierSubmitted)
        assert event.data.procedure_name == procedure.name_vi != procedure.code
        assert event.data.document_names == {d.type: d.name_vi for d in procedure.documents}


async def test_a_code_already_taken_is_skipped(intake: Intake) -> None:
    _dossiers(intake).taken = {"G01.99-261201-0001", "G01.99-261201-0002"}
    answer, _ = await handlers.submit(Submit(await _body(intake)), intake=intake)
    assert answer["code"] == "G01.99-261201-0003"


async def test_an_invalid_submission_changes_nothing_not_even_its_key(intake: Intake) -> None:
    body = await _body(intake)
    del body["applicant"]
    with pytest.raises(FormError) as caught:
        await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    assert "applicant" in {e["field"] for e in caught.value.errors}
    assert _dossiers(intake).docs == {} and await intake.keys.get("k") is None


async def test_missing_or_unknown_attachments_are_named(intake: Intake) -> None:
    body = await _body(intake)
    body["attachments"] = [{"document_type": body["attachments"][0]["document_type"], "id": "x"}]
    with pytest.raises(FormError) as caught:
        await handlers.submit(Submit(body), intake=intake)
    codes = {e["code"] for e in caught.value.errors}
    assert {"unknown_attachment", "missing_document"} <= codes
    assert _dossiers(intake).docs == {}


async def test_a_retry_with_the_same_key_gets_the_first_answer(intake: Intake) -> None:
    body = await _body(intake)
    first, replayed_first = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    again, replayed = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    assert (again, replayed, replayed_first) == (first, True, False)
    assert len(_dossiers(intake).docs) == 1 and len(_published(intake)) == 1


async def test_a_retry_that_uploaded_the_same_files_again_is_the_same_submission(
    intake: Intake,
) -> None:
    """A reload on another portal replica (or a phone that lost the upload's answer) uploads
    the same bytes again under new ids: the key still finds the first receipt."""
    body = await _body(intake)
    first, _ = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    again = await _body(intake)  # the same files, new ids
    assert [a["id"] for a in again["attachments"]] != [a["id"] for a in body["attachments"]]
    answer, replayed = await handlers.submit(Submit(again, idempotency_key="k"), intake=intake)
    assert (answer, replayed) == (first, True)
    assert len(_dossiers(intake).docs) == 1
    other = await _body(intake)
    other_id = other["attachments"][0]["id"]
    intake.files.data[other_id] = b"%PDF-1.4 another"  # type: ignore[attr-defined]
    intake.files.files[other_id]["sha256"] = "0" * 64  # type: ignore[attr-defined]
    with pytest.raises(KeyReused):  # other bytes: another submission
        await handlers.submit(Submit(other, idempotency_key="k"), intake=intake)


async def test_the_same_key_with_another_body_is_a_conflict(intake: Intake) -> None:
    body = await _body(intake)
    await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    other = {**body, "notify_by": ["zalo"]}
    with pytest.raises(KeyReused):
        await handlers.submit(Submit(other, idempotency_key="k"), intake=intake)
    assert len(_dossiers(intake).docs) == 1


async def test_a_key_whose_holder_is_at_work_answers_still_running(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "WAIT_SECONDS", 0.1)
    body = await _body(intake)
    await intake.keys.claim("k", _key_hash(intake, body), NOW)
    with pytest.raises(StillRunning):
        await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    assert _dossiers(intake).docs == {}


async def test_a_key_whose_holder_died_is_taken_over_once(intake: Intake) -> None:
    body = await _body(intake)
    await intake.keys.claim("k", _key_hash(intake, body), NOW - LEASE - timedelta(seconds=1))
    answer, replayed = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    assert not replayed and answer["access_secret"]
    again, replayed = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    assert (again, replayed) == (answer, True)
    assert len(_dossiers(intake).docs) == 1


async def test_a_taken_over_key_answers_from_what_the_dead_holder_stored(intake: Intake) -> None:
    body = await _body(intake)
    stored, _ = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    keys = intake.keys
    assert isinstance(keys, FakeKeys)
    keys.records["k"] = replace(keys.records["k"], answer=None, claimed_at=NOW - 2 * LEASE)
    answer, _ = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    assert answer["code"] == stored["code"] and answer["access_secret"] is None
    assert len(_dossiers(intake).docs) == 1


async def test_a_late_holder_of_a_key_answers_what_the_retry_that_took_it_over_answered(
    intake: Intake,
) -> None:
    """The first request outlives its lease; a retry takes the key over, files and answers.
    The first one then neither files a second dossier nor overwrites the answer."""
    body = await _body(intake)
    keys = intake.keys
    assert isinstance(keys, FakeKeys)
    retried: list[dict[str, Any]] = []

    @dataclass
    class SlowFirstHolder(FakeKeys):
        async def claim(self, key: str, body_hash: str, now: datetime) -> bool:
            claimed = await keys.claim(key, body_hash, now - 2 * LEASE)
            retried.append(
                (await handlers.submit(Submit(body, idempotency_key=key), intake=intake))[0]
            )
            return claimed

        async def get(self, key: str) -> KeyRecord | None:
            return await keys.get(key)

        async def answer(self, key: str, answer: dict[str, Any], *, lease: int) -> bool:
            return await keys.answer(key, answer, lease=lease)

    first, _ = await handlers.submit(
        Submit(body, idempotency_key="k"), intake=replace(intake, keys=SlowFirstHolder())
    )
    assert first == retried[0] == keys.records["k"].answer
    assert len(_dossiers(intake).docs) == 1


async def test_a_broker_outage_does_not_fail_a_submission(intake: Intake) -> None:
    assert isinstance(intake.publish, Published)
    intake.publish.broken = True
    answer, _ = await handlers.submit(Submit(await _body(intake)), intake=intake)
    assert answer["code"] in _dossiers(intake).docs  # the relay publishes it later


# look_up


async def test_the_status_is_shown_for_the_secret_or_the_phone_only(intake: Intake) -> None:
    code, secret = await _submitted(intake)
    for proof in (Proof(code, secret=secret), Proof(code, phone=PHONE)):
        found = await handlers.look_up(proof, dossiers=intake.dossiers)
        assert found.code == code and found.status == "submitted"
    for proof in (
        Proof(code, secret="wrong"),
        Proof(code, phone="0912000000"),
        Proof(code, phone="not a phone"),
        Proof(code),
        Proof("G01.99-261201-9999", secret=secret),
    ):
        with pytest.raises(UnknownDossier):
            await handlers.look_up(proof, dossiers=intake.dossiers)


# withdraw


async def test_a_withdrawal_is_recorded_and_published_once(intake: Intake) -> None:
    code, secret = await _submitted(intake)
    withdrawn = await handlers.withdraw(Proof(code, secret=secret), "moved", intake=intake)
    assert withdrawn.status == "withdrawn" and int(withdrawn.status_code) == 7
    event = _published(intake)[-1]
    assert isinstance(event, DossierWithdrawn) and event.data.reason == "moved"
    assert event.correlationid == _published(intake)[0].correlationid
    with pytest.raises(NotAllowedNow):
        await handlers.withdraw(Proof(code, secret=secret), None, intake=intake)
    assert len(_published(intake)) == 2


async def test_a_decided_dossier_can_no_longer_be_withdrawn(intake: Intake) -> None:
    code, secret = await _submitted(intake)
    await handlers.record_review_event(
        approved_event(submitted_event(code=code)), dossiers=intake.dossiers
    )
    with pytest.raises(NotAllowedNow):
        await handlers.withdraw(Proof(code, secret=secret), None, intake=intake)


async def test_a_withdrawal_that_loses_a_race_is_decided_again(intake: Intake) -> None:
    code, secret = await _submitted(intake)
    _dossiers(intake).conflicts = 2
    withdrawn = await handlers.withdraw(Proof(code, secret=secret), None, intake=intake)
    assert withdrawn.status == "withdrawn"
    _dossiers(intake).conflicts = 99
    code2, secret2 = await _submitted(intake)
    with pytest.raises(Busy):
        await handlers.withdraw(Proof(code2, secret=secret2), None, intake=intake)


async def test_a_withdrawal_with_the_wrong_secret_changes_nothing(intake: Intake) -> None:
    code, _ = await _submitted(intake)
    with pytest.raises(UnknownDossier):
        await handlers.withdraw(Proof(code, secret="guess"), None, intake=intake)
    assert _dossiers(intake).docs[code].status == "submitted"


# supplement


def _asked(code: str) -> DossierSupplementRequested:
    return DossierSupplementRequested.create(
        source="review",
        subject=code,
        time=NOW + timedelta(hours=1),
        data=DossierSupplementRequestedData(
            dossier_code=code, task_id="t", officer_id="o", requested_at=NOW
        ),
    )


async def test_a_requested_supplement_is_recorded_and_published(intake: Intake) -> None:
    code, secret = await _submitted(intake)
    with pytest.raises(NotAllowedNow):
        await handlers.supplement(Proof(code, secret=secret), [], None, intake=intake)
    await handlers.record_review_event(_asked(code), dossiers=intake.dossiers)
    put = await intake.files.put(b"%PDF", media_type="application/pdf", document_type="ct01")
    assert isinstance(intake.clock, Clock)
    intake.clock.now = NOW + timedelta(hours=2)
    ref = {"document_type": "ct01", "id": put["id"]}
    done = await handlers.supplement(Proof(code, phone=PHONE), [ref], "here", intake=intake)
    assert done.status == "supplemented"
    event = _published(intake)[-1]
    assert isinstance(event, DossierSupplemented)
    assert [d["id"] for d in event.data.documents] == [put["id"]] and event.data.note == "here"


async def test_a_supplement_with_bad_attachments_is_refused_and_changes_nothing(
    intake: Intake,
) -> None:
    code, secret = await _submitted(intake)
    await handlers.record_review_event(_asked(code), dossiers=intake.dossiers)
    for refs in (
        [{"document_type": "ct01", "id": "nope"}],
        [{"id": "x"}],
        [{"document_type": "passport", "id": "x"}],
    ):
        with pytest.raises(FormError):
            await handlers.supplement(Proof(code, secret=secret), refs, None, intake=intake)
    assert _dossiers(intake).docs[code].status == "supplement_requested"
    assert len(_published(intake)) == 1


# record_review_event and the consumer's table


async def test_reviews_events_are_recorded_once_whatever_their_order(intake: Intake) -> None:
    code, secret = await _submitted(intake)
    approved = approved_event(submitted_event(code=code))
    asked = _asked(code)
    for event in (approved, asked, approved):
        await handlers.record_review_event(event, dossiers=intake.dossiers)
    found = await handlers.look_up(Proof(code, secret=secret), dossiers=intake.dossiers)
    assert [s.status for s in found.steps] == ["approved", "supplement_requested"]
    assert found.status == ("approved" if approved.time > asked.time else "supplement_requested")


async def test_an_event_about_an_unknown_dossier_or_of_an_unknown_type_is_refused(
    intake: Intake,
) -> None:
    with pytest.raises(UnknownDossier):
        await handlers.record_review_event(_asked("G01.99-261201-9999"), dossiers=intake.dossiers)
    with pytest.raises(NotIntakes):
        await handlers.record_review_event(submitted_event(), dossiers=intake.dossiers)


async def test_the_consumer_dispatches_by_type_and_dead_letters_what_it_cannot_use(
    intake: Intake,
) -> None:
    code, _ = await _submitted(intake)
    handle = consumer.consumer(intake.dossiers)
    assert (
        consumer.bindings() == sorted(consumer.HANDLERS) and "dossier.approved" in consumer.HANDLERS
    )
    await handle(_asked(code))
    assert _dossiers(intake).docs[code].status == "supplement_requested"
    with pytest.raises(PermanentFailure, match="does not handle"):
        await handle(submitted_event(code=code))
    with pytest.raises(PermanentFailure, match="UnknownDossier"):
        await handle(_asked("G01.99-261201-9999"))


# upload


async def test_an_upload_is_kept_with_its_hash_unless_empty_or_of_a_type_nobody_takes(
    intake: Intake,
) -> None:
    kept = await handlers.upload(
        b"%PDF-1.4\n%%EOF\n",
        media_type="application/pdf",
        document_type="ct01",
        files=intake.files,
        catalogue=intake.catalogue,
    )
    assert kept["sha256"] == hashlib.sha256(b"%PDF-1.4\n%%EOF\n").hexdigest() and kept["size"] == 15
    with pytest.raises(UnsupportedMedia):
        await handlers.upload(
            b"MZ",
            media_type="application/x-msdownload",
            document_type="ct01",
            files=intake.files,
            catalogue=intake.catalogue,
        )
    with pytest.raises(EmptyFile):
        await handlers.upload(
            b"",
            media_type="application/pdf",
            document_type="ct01",
            files=intake.files,
            catalogue=intake.catalogue,
        )
    assert isinstance(intake.files, FakeFiles) and len(intake.files.files) == 1
