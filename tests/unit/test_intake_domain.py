from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from services.intake.domain import (
    TemporaryResidenceRegistration,
    check_personal_id,
    dossier_code,
    normalise_mobile,
)
from tests.factories import VALID_FORM, form


def _fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_the_valid_example_is_accepted_and_phone_normalised() -> None:
    parsed = TemporaryResidenceRegistration.model_validate(VALID_FORM)
    assert parsed.applicant.phone == "+84912345678"


def test_the_openapi_example_is_itself_valid() -> None:
    example = TemporaryResidenceRegistration.model_json_schema()["examples"][0]
    TemporaryResidenceRegistration.model_validate(example)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("84-3.1234-5678", "+84312345678"),
        ("0 8 8 1 2 3 4 5 6 7", "+84881234567"),
    ],
)
def test_mobile_numbers_are_normalised_to_plus_84(raw: str, expected: str) -> None:
    assert normalise_mobile(raw) == expected


@pytest.mark.parametrize("raw", ["0212345678", "091234567", "09123456789", "+85912345678", "abc"])
def test_non_mobile_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="mobile"):
        normalise_mobile(raw)


def test_personal_id_must_agree_with_birth_and_sex() -> None:
    check_personal_id("001190012345", date(1990, 5, 17), "female")
    check_personal_id("079303001234", date(2003, 1, 1), "female")
    check_personal_id("079202001234", date(2002, 1, 1), "male")
    with pytest.raises(ValueError, match="sex"):
        check_personal_id("001190012345", date(1990, 5, 17), "male")
    with pytest.raises(ValueError, match="birth year"):
        check_personal_id("001190012345", date(1991, 5, 17), "female")
    with pytest.raises(ValueError, match="century"):
        check_personal_id("001390012345", date(1990, 5, 17), "female")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"personal_id": "12345"}, "applicant.personal_id"),
        ({"personal_id": "001090012345"}, "applicant.personal_id"),
        ({"phone": "12345"}, "applicant.phone"),
        ({"email": "not-an-address"}, "applicant.email"),
        ({"full_name": ""}, "applicant.full_name"),
        ({"sex": "other"}, "applicant.sex"),
        ({"date_of_birth": str(date.today() + timedelta(days=2))}, "applicant.date_of_birth"),
    ],
)
def test_each_malformed_field_is_named(change: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TemporaryResidenceRegistration.model_validate(form(**change))
    assert field in _fields(caught.value)


@pytest.mark.parametrize("missing", ["full_name", "personal_id", "phone", "email", "date_of_birth"])
def test_each_missing_applicant_field_is_named(missing: str) -> None:
    body = form()
    del body["applicant"][missing]
    with pytest.raises(ValidationError) as caught:
        TemporaryResidenceRegistration.model_validate(body)
    assert f"applicant.{missing}" in _fields(caught.value)


def test_unknown_fields_are_refused() -> None:
    body = form()
    body["surprise"] = 1
    with pytest.raises(ValidationError):
        TemporaryResidenceRegistration.model_validate(body)


def test_dossier_code_has_agency_date_and_padded_counter() -> None:
    assert dossier_code("G01.99", date(2026, 6, 9), 92) == "G01.99-260609-0092"
    assert dossier_code("G01.99", date(2026, 6, 9), 12345) == "G01.99-260609-12345"
