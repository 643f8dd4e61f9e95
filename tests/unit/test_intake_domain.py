"""Intake's forms: every procedure of the catalogue, validated as a clerk would."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.intake.catalogue import FormError, load_catalogue
from services.intake.domain import dossier_code, review_step
from services.intake.fields import check_personal_id, normalise_mobile
from services.intake.openapi import example
from services.intake.status import Step, current_status, promised_date
from services.intake.submission import parse
from shared.contracts import (
    DossierChecked,
    DossierDecisionData,
    DossierRejected,
    DossierTransitionData,
    PortalStatus,
)
from tests.factories import CATALOGUE

PROCEDURES = sorted(CATALOGUE.procedures)


def _errors(body: Any, channel: int = 2) -> dict[str, str]:
    with pytest.raises(FormError) as caught:
        parse(body, CATALOGUE, channel=channel)
    return {e["field"]: e["code"] for e in caught.value.errors}


def _required_paths(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for name in schema.get("required", []):
        prop = schema["properties"][name]
        paths.append(prefix + name)
        ref = prop.get("$ref")
        if ref:
            paths += _required_paths(defs[ref.split("/")[-1]], defs, f"{prefix}{name}.")
    return paths


def test_the_catalogue_covers_the_eleven_police_procedures() -> None:
    assert len(CATALOGUE.procedures) == 11
    for code in (
        "1.004222",
        "1.004194",
        "1.002755",
        "1.003677",
        "2.001159",
        "2.001178",
        "1.001456",
        "the-can-cuoc",
        "dang-ky-xe-mo-to",
        "nop-phat-giao-thong",
        "con-dau",
    ):
        assert code in CATALOGUE.procedures
    residence = CATALOGUE.procedures["1.004222"]
    assert (residence.deadline.working_days, residence.fee.online, residence.fee.desk) == (
        7,
        10000,
        20000,
    )
    assert CATALOGUE.procedures["1.004194"].deadline.working_days == 3
    assert CATALOGUE.procedures["1.003677"].deadline.working_days == 1
    assert CATALOGUE.procedures["2.001159"].deadline.working_days == 0


@pytest.mark.parametrize("code", PROCEDURES)
def test_each_procedures_example_is_accepted(code: str) -> None:
    procedure = CATALOGUE.procedures[code]
    submission = parse(example(procedure), CATALOGUE, channel=procedure.channels[-1])
    assert submission.procedure.code == code
    assert submission.applicant["phone"].startswith("+84")
    if procedure.receiving_unit == "ward":
        assert submission.ward_code is not None


@pytest.mark.parametrize("code", PROCEDURES)
def test_each_required_field_missing_is_named(code: str) -> None:
    procedure = CATALOGUE.procedures[code]
    schema = procedure.model.model_json_schema()
    paths = _required_paths(schema, schema.get("$defs", {}))
    assert "applicant.personal_id" in paths
    for path in paths:
        body = example(procedure)
        parent = body
        *head, last = path.split(".")
        for part in head:
            parent = parent[part]
        if last not in parent:
            continue
        del parent[last]
        assert _errors(body, procedure.channels[-1]).get(path) == "missing", path


MALFORMED = {
    "applicant.personal_id": ("12345", "string_pattern_mismatch"),
    "applicant.phone": ("0212345678", "invalid_mobile"),
    "applicant.date_of_birth": ("17/05/1990", "date_from_datetime_parsing"),
    "applicant.full_name": ("", "string_too_short"),
    "applicant.sex": ("x", "literal_error"),
}


@pytest.mark.parametrize("code", PROCEDURES)
@pytest.mark.parametrize("path", sorted(MALFORMED))
def test_each_malformed_applicant_field_is_named(code: str, path: str) -> None:
    procedure = CATALOGUE.procedures[code]
    body = example(procedure)
    value, expected = MALFORMED[path]
    body["applicant"][path.split(".")[1]] = value
    assert _errors(body, procedure.channels[-1]).get(path, "").startswith(expected.split("_")[0])


@pytest.mark.parametrize("code", [c for c in PROCEDURES if CATALOGUE.procedures[c].routing_ward])
def test_an_unknown_ward_is_named(code: str) -> None:
    procedure = CATALOGUE.procedures[code]
    body = example(procedure)
    assert procedure.routing_ward is not None
    group, field = procedure.routing_ward.split(".")
    body[group][field] = "99999"
    assert _errors(body, procedure.channels[-1]) == {procedure.routing_ward: "unknown_ward"}


def test_an_absence_must_end_after_it_starts() -> None:
    body = example(CATALOGUE.procedures["1.003677"])
    body["absence_until"] = body["absence_from"]
    assert _errors(body) == {"absence_until": "date_order"}


def test_a_temporary_stay_is_at_most_two_years() -> None:
    body = example(CATALOGUE.procedures["1.004194"])
    body["stay_from"] = "2026-01-01"
    body["stay_until"] = "2028-06-01"
    assert _errors(body) == {"stay_until": "date_span"}


def test_a_birth_in_the_future_is_refused() -> None:
    body = example(CATALOGUE.procedures["1.004194"])
    body["applicant"]["date_of_birth"] = str(date.today() + timedelta(days=2))
    assert _errors(body)["applicant.date_of_birth"] == "future_date"


def test_personal_id_must_agree_with_birth_and_sex() -> None:
    check_personal_id("001190012345", date(1990, 5, 17), "female")
    check_personal_id("079303001234", date(2003, 1, 1), "female")
    for number, born, sex in [
        ("001190012345", date(1990, 5, 17), "male"),
        ("001190012345", date(1991, 5, 17), "female"),
        ("001390012345", date(1990, 5, 17), "female"),
    ]:
        with pytest.raises(ValueError):  # noqa: PT011 - the code is checked below
            check_personal_id(number, born, sex)
    body = example(CATALOGUE.procedures["1.004194"])
    body["applicant"]["sex"] = "male"
    assert _errors(body) == {"applicant.personal_id": "id_sex"}


def test_a_personal_id_must_start_with_a_province_of_birth() -> None:
    body = example(CATALOGUE.procedures["1.004194"])
    body["applicant"]["personal_id"] = "003190012345"  # 003 was never a province code
    assert _errors(body) == {"applicant.personal_id": "id_prefix"}


def test_unknown_procedure_and_unknown_fields_are_refused() -> None:
    assert _errors({"procedure_code": "9.999999"}) == {"procedure_code": "unknown_procedure"}
    assert _errors({}) == {"procedure_code": "missing"}
    assert _errors([1]) == {"body": "body_type"}
    body = example(CATALOGUE.procedures["1.004194"])
    body["surprise"] = 1
    assert _errors(body) == {"surprise": "extra_forbidden"}


def test_channel_and_applicant_kind_must_be_allowed() -> None:
    body = example(CATALOGUE.procedures["2.001159"])
    assert _errors(body, channel=3) == {"channel": "channel_not_allowed"}
    seal = example(CATALOGUE.procedures["con-dau"])
    del seal["applicant_kind"]  # a citizen (kind 1) cannot order an organisation's seal
    assert _errors(seal) == {"applicant_kind": "applicant_kind_not_allowed"}
    seal["applicant_kind"] = 2
    assert parse(seal, CATALOGUE, channel=2).applicant_kind == 2


def test_email_notifications_need_an_address() -> None:
    body = example(CATALOGUE.procedures["1.004222"])  # the applicant gave no e-mail
    body["notify_by"] = ["email"]
    assert _errors(body) == {"applicant.email": "email_required"}
    body["notify_by"] = ["pigeon"]
    assert _errors(body) == {"notify_by": "literal_error"}


def test_fee_follows_channel_and_request_kind() -> None:
    residence = example(CATALOGUE.procedures["1.004222"])
    assert parse(residence, CATALOGUE, channel=2).fee == 10000
    assert parse(residence, CATALOGUE, channel=1).fee == 20000
    card = example(CATALOGUE.procedures["the-can-cuoc"])
    card["request_kind"] = "reissue"
    assert parse(card, CATALOGUE, channel=2).fee == 70000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("84-3.1234-5678", "+84312345678"),
    ],
)
def test_mobile_numbers_are_normalised_to_plus_84(raw: str, expected: str) -> None:
    assert normalise_mobile(raw) == expected


def test_dossier_code_has_agency_date_and_padded_counter() -> None:
    assert dossier_code("G01.99", date(2026, 6, 9), 92) == "G01.99-260609-0092"
    assert dossier_code("G01.99", date(2026, 6, 9), 12345) == "G01.99-260609-12345"


def test_a_broken_procedure_file_is_refused_with_its_name(tmp_path: Path) -> None:
    source = yaml.safe_load(Path("services/intake/procedures/1.004194.yaml").read_text())
    for change, message in [
        ({"routing_ward": "nowhere.ward"}, "routing_ward names 'nowhere.ward'"),
        ({"example": {"applicant": {}}}, "applicant"),
        ({"form": {"x": {"type": "text"}}}, "needs an `applicant` field"),
    ]:
        broken = copy.deepcopy(source) | change
        (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken, allow_unicode=True))
        with pytest.raises(ValueError, match=r"broken\.yaml") as caught:
            load_catalogue(tmp_path)
        assert message in str(caught.value)


def test_an_apology_moves_the_promised_date_but_not_the_status() -> None:
    day = datetime(2026, 12, 1, 8, tzinfo=UTC)
    receipt_date = day + timedelta(days=7)
    statuses = [
        Step("e1", "received", day, receipt_date),
        Step("e2", "apology_issued", day + timedelta(days=8), day + timedelta(days=12)),
        Step("e3", "supplement_requested", day + timedelta(days=9)),
    ]
    assert current_status(statuses) == "supplement_requested"
    assert promised_date(statuses, receipt_date) == day + timedelta(days=12)
    assert promised_date(statuses[2:], receipt_date) == receipt_date
    assert current_status(statuses[:2]) == "received"


def test_the_citizen_is_told_why_but_not_the_officers_own_reasons() -> None:
    """A rejection's reason reaches the applicant's history; a check's reason (an officer's
    note to the chief) does not."""
    at = datetime(2026, 12, 1, 8, tzinfo=UTC)
    rejected = DossierRejected.create(
        source="urn:t",
        subject="G01.99-261201-0001",
        time=at,
        data=DossierDecisionData(
            dossier_code="G01.99-261201-0001",
            task_id="t1",
            procedure_code="1.004194",
            unit_id="CAP-BADINH",
            officer_id="o1",
            decided_at=at,
            reason="Hợp đồng thuê nhà hết hạn",
        ),
    )
    checked = DossierChecked.create(
        source="urn:t",
        subject="G01.99-261201-0001",
        time=at,
        data=DossierTransitionData(
            dossier_code="G01.99-261201-0001",
            task_id="t1",
            procedure_code="1.004194",
            workflow_version=1,
            action="check",
            from_state="received",
            to_state="checked",
            unit_id="CAP-BADINH",
            actor="o1",
            at=at,
            reason="Đề xuất chấp thuận, anh xem giúp",
            status_code=PortalStatus.IN_PROCESS,
        ),
    )
    told = review_step(rejected)
    assert (told.status, told.reason) == ("rejected", "Hợp đồng thuê nhà hết hạn")
    assert review_step(checked).reason is None
