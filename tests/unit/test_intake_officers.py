"""Officers' reads at intake: the receiving unit learnt from review's events, a dossier's
documents listed and served to that unit only, their SHA-256 checked (in-memory fakes)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from services.intake import consumer, handlers, reading
from services.intake.attachments import StoredFile
from services.intake.domain import Dossier, UnknownDossier
from services.intake.handlers import Intake, Proof
from services.intake.officers import (
    CorruptDocument,
    Document,
    NoAccess,
    NotAssigned,
    UnknownDocument,
)
from shared.auth import OfficerClaims
from shared.contracts import (
    DossierAssigned,
    DossierAssignedData,
    DossierReassigned,
    DossierReassignedData,
)
from tests.unit.test_intake_handlers import (
    NOW,
    PHONE,
    Clock,
    FakeDossiers,
    FakeFiles,
    _asked,
    _dossiers,
    _submitted,
    intake,
)

__all__ = ["intake"]  # the fixture, shared with the handlers' tests

OFFICER = OfficerClaims("cb-badinh-01", "officer", "CAP-BADINH")
OTHER_UNIT = OfficerClaims("cb-hoankiem-01", "officer", "CAP-HOANKIEM")
PROVINCE_SUPERVISOR = OfficerClaims("cb-pc06-gs", "supervisor", "PC06-HN")
CHIEF = OfficerClaims("cb-badinh-tp", "chief", "CAP-BADINH")


def _assigned(code: str, unit: str = "CAP-BADINH") -> DossierAssigned:
    return DossierAssigned.create(
        source="urn:review",
        subject=code,
        time=NOW + timedelta(minutes=1),
        data=DossierAssignedData(
            dossier_code=code,
            task_id="t1",
            procedure_code="1.004194",
            unit_id=unit,
            officer_id="cb-badinh-01",
            assigned_at=NOW,
        ),
    )


def _reassigned(code: str, unit: str, minutes: int) -> DossierReassigned:
    at = NOW + timedelta(minutes=minutes)
    return DossierReassigned.create(
        source="urn:review",
        subject=code,
        time=at,
        data=DossierReassignedData(
            dossier_code=code,
            task_id="t1",
            procedure_code="1.004194",
            unit_id=unit,
            officer_id=None,
            previous_officer_id="cb-badinh-01",
            by="cb-badinh-01",
            action="release",
            at=at,
        ),
    )


async def _assigned_dossier(intake: Intake) -> str:
    code, _ = await _submitted(intake)
    await consumer.consumer(intake.dossiers)(_assigned(code))
    return code


async def _documents(
    intake: Intake, code: str, officer: OfficerClaims
) -> tuple[Dossier, list[Document]]:
    return await reading.documents(
        code,
        officer,
        dossiers=intake.dossiers,
        files=intake.files,
        catalogue=intake.catalogue,
    )


async def _document(
    intake: Intake, code: str, document_id: str, officer: OfficerClaims
) -> tuple[Document, StoredFile]:
    return await reading.document(
        code,
        document_id,
        officer,
        dossiers=intake.dossiers,
        files=intake.files,
        catalogue=intake.catalogue,
    )


async def test_the_assignment_records_the_receiving_unit_a_later_holder_moves_it(
    intake: Intake,
) -> None:
    code = await _assigned_dossier(intake)
    stored = _dossiers(intake).docs[code]
    assert stored.unit_id == "CAP-BADINH" and stored.status == "assigned"
    handle = consumer.consumer(intake.dossiers)
    await handle(_reassigned(code, "CAP-HOANKIEM", minutes=10))
    await handle(_reassigned(code, "PC06-HN", minutes=5))  # older, arriving late: ignored
    after = _dossiers(intake).docs[code]
    assert after.unit_id == "CAP-HOANKIEM"
    assert [s.status for s in after.steps] == ["assigned"]  # not a status the citizen sees
    assert "dossier.reassigned" in consumer.bindings()


async def test_an_officer_of_the_unit_lists_every_document_with_its_name_and_upload_time(
    intake: Intake,
) -> None:
    code = await _assigned_dossier(intake)
    await handlers.record_review_event(_asked(code), dossiers=intake.dossiers)
    put = await intake.files.put(
        b"%PDF-1.4 more", media_type="application/pdf", document_type="ct01"
    )
    assert isinstance(intake.clock, Clock)
    intake.clock.now = NOW + timedelta(hours=2)
    ref = {"document_type": "ct01", "id": put["id"]}
    await handlers.supplement(Proof(code, phone=PHONE), [ref], None, intake=intake)
    dossier, listed = await _documents(intake, code, OFFICER)
    assert dossier.code == code
    assert [(d.kind, d.source) for d in listed] == [
        ("ct01", "submission"),
        ("legal_residence_proof", "submission"),
        ("ct01", "supplement"),
    ]
    first = listed[0]
    assert first.name == "Tờ khai thay đổi thông tin cư trú (CT01)"
    assert (first.content_type, first.size, len(first.sha256)) == ("application/pdf", 8, 64)
    assert first.uploaded_at is not None and first.added_at == NOW
    assert listed[2].added_at == NOW + timedelta(hours=2) and listed[2].id == put["id"]


async def test_only_officers_of_the_receiving_unit_read_its_documents(
    intake: Intake,
) -> None:
    code = await _assigned_dossier(intake)
    doc_id = _dossiers(intake).docs[code].attachments[0]["id"]
    with pytest.raises(NoAccess):
        await _document(intake, code, doc_id, OTHER_UNIT)
    with pytest.raises(NoAccess):  # not even the province office's supervisor
        await _documents(intake, code, PROVINCE_SUPERVISOR)
    wanted, stored = await _document(intake, code, doc_id, CHIEF)
    assert stored.chunks == (b"%PDF-1.4",) and wanted.id == doc_id
    unassigned, _ = await _submitted(intake)
    with pytest.raises(NotAssigned):
        await _documents(intake, unassigned, OFFICER)


async def test_an_unknown_dossier_or_document_is_not_found(intake: Intake) -> None:
    code = await _assigned_dossier(intake)
    with pytest.raises(UnknownDossier):
        await _documents(intake, "G01.99-261201-9999", OFFICER)
    other = await intake.files.put(
        b"%PDF other", media_type="application/pdf", document_type="ct01"
    )
    with pytest.raises(UnknownDocument):  # stored, but not this dossier's
        await _document(intake, code, other["id"], OFFICER)


async def test_a_document_whose_bytes_changed_is_never_served_and_is_logged(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    code = await _assigned_dossier(intake)
    doc_id = _dossiers(intake).docs[code].attachments[0]["id"]
    files = intake.files
    assert isinstance(files, FakeFiles)
    files.data[doc_id] = b"%PDF-1.5"  # the same size, other bytes
    with caplog.at_level(logging.ERROR), pytest.raises(CorruptDocument):
        await _document(intake, code, doc_id, OFFICER)
    assert any("SHA-256" in r.getMessage() for r in caplog.records)


async def test_a_whole_file_other_than_the_one_the_dossier_recorded_is_not_served(
    intake: Intake,
) -> None:
    code = await _assigned_dossier(intake)
    dossiers = intake.dossiers
    assert isinstance(dossiers, FakeDossiers)
    stored = dossiers.docs[code]
    first = {**stored.attachments[0], "sha256": "0" * 64}
    dossiers.docs[code] = replace(stored, attachments=(first, *stored.attachments[1:]))
    with pytest.raises(CorruptDocument):
        await _document(intake, code, first["id"], OFFICER)
