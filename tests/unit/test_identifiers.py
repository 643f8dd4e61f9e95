"""Property-based tests (hypothesis) of the identifier validators."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.intake.fields import (
    OldId,
    PersonalId,
    WardCode,
    _identity,
    check_personal_id,
    normalise_mobile,
    ward_names,
)

PREFIXES = st.sampled_from(_identity()["province_prefixes"])
births = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
sexes = st.sampled_from(["male", "female"])


def personal_id(prefix: str, born: date, sex: str, serial: int) -> str:
    digit = (born.year // 100 - 19) * 2 + (sex == "female")
    return f"{prefix}{digit}{born.year % 100:02d}{serial:06d}"


@given(PREFIXES, births, sexes, st.integers(0, 999_999))
def test_an_id_built_from_the_person_is_accepted(
    prefix: str, born: date, sex: str, serial: int
) -> None:
    number = personal_id(prefix, born, sex, serial)
    assert TypeAdapter(PersonalId).validate_python(number) == number
    check_personal_id(number, born, sex)


@given(PREFIXES, births, sexes, st.integers(0, 999_999))
def test_an_id_of_the_other_sex_is_refused(prefix: str, born: date, sex: str, serial: int) -> None:
    number = personal_id(prefix, born, sex, serial)
    with pytest.raises(ValueError, match="sex"):
        check_personal_id(number, born, "female" if sex == "male" else "male")


@given(PREFIXES, births, births, sexes, st.integers(0, 999_999))
def test_an_id_of_another_birth_year_is_refused(
    prefix: str, born: date, other: date, sex: str, serial: int
) -> None:
    assume(other.year != born.year)
    number = personal_id(prefix, born, sex, serial)
    with pytest.raises(ValueError, match=r"century|birth year"):
        check_personal_id(number, other, sex)


@given(st.text(max_size=15))
def test_anything_else_is_refused_or_a_well_formed_id(text: str) -> None:
    try:
        number = TypeAdapter(PersonalId).validate_python(text)
    except ValidationError:
        return
    assert len(number) == 12 and number.isdigit()


@given(st.sampled_from("35789"), st.integers(0, 99_999_999), st.sampled_from(["0", "+84", "84"]))
def test_mobile_numbers_normalise_to_plus_84_whatever_the_form(
    second: str, rest: int, lead: str
) -> None:
    raw = f"{lead}{second}{rest:08d}"
    normal = normalise_mobile(raw)
    assert normal == f"+84{second}{rest:08d}"
    assert normalise_mobile(normal) == normal  # idempotent
    spaced = f"{lead} {second}{rest:08d}"[:6] + " " + f"{lead} {second}{rest:08d}"[6:]
    assert normalise_mobile(spaced) == normal


@given(st.text(max_size=20))
def test_mobile_check_never_crashes(text: str) -> None:
    try:
        normal = normalise_mobile(text)
    except ValueError:
        return
    assert normal.startswith("+84") and len(normal) == 12


@given(st.from_regex(r"\A\d{9}\Z"))
def test_old_ids_are_nine_digits(number: str) -> None:
    assert TypeAdapter(OldId).validate_python(number) == number


@given(st.from_regex(r"\A\d{5}\Z"))
def test_ward_codes_are_exactly_the_2025_list(code: str) -> None:
    try:
        TypeAdapter(WardCode).validate_python(code)
    except ValidationError:
        assert code not in ward_names()
    else:
        assert code in ward_names()


def test_the_2025_list_has_3321_communes_and_wards() -> None:
    assert len(ward_names()) == 3321
