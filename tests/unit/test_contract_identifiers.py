"""Identifiers take a restricted alphabet and length; free text is NFC and control-free."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from pydantic import BaseModel, Field, ValidationError

from shared.contracts.identifiers import (
    EndpointId,
    MultilineText,
    OfficerId,
    PartnerId,
    Text,
    UnitId,
)

ROOT = Path(__file__).resolve().parents[2]


class Sample(BaseModel):
    officer: OfficerId = "cb-1"
    unit: UnitId = "U"
    partner: PartnerId = "vnpost"
    endpoint: EndpointId = "sms.primary"
    name: Annotated[Text, Field(max_length=200)] = "Tên"
    reason: MultilineText | None = None


def test_every_id_of_the_shipped_roster_is_valid() -> None:
    roster = yaml.safe_load((ROOT / "deploy/roster.yaml").read_text(encoding="utf-8"))
    for unit in roster["units"]:
        Sample(unit=unit["id"], name=unit["name"])
    for officer in roster["officers"]:
        Sample(officer=officer["id"], unit=officer["unit"], name=officer["name"])


@pytest.mark.parametrize(
    "good", ["CAP-BADINH", "cb-badinh-01", "PC06-HN", "o1", "U", "a.b_c-d", "x" * 64]
)
def test_identifiers_of_the_alphabet_pass(good: str) -> None:
    for field in ("officer", "unit", "partner", "endpoint"):
        assert getattr(Sample.model_validate({field: good}), field) == good


@pytest.mark.parametrize(
    "bad",
    [
        "®𛿤𠄕\u0002*_Ó",  # what a fuzz run once stored as an officer id
        "",
        "x" * 65,
        "-leading",
        ".hidden",
        "a b",
        "a\u0000",
        "tab\t",
        "line\n",
        "Đinh",
        "a/b",
        "a\u200b",
    ],
)
def test_identifiers_outside_the_alphabet_are_refused(bad: str) -> None:
    for field in ("officer", "unit", "partner", "endpoint"):
        with pytest.raises(ValidationError):
            Sample.model_validate({field: bad})


def test_text_is_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Nguyễn Đình Chiểu")
    assert decomposed != "Nguyễn Đình Chiểu"
    assert Sample(name=decomposed).name == "Nguyễn Đình Chiểu"
    assert Sample(reason=decomposed).reason == "Nguyễn Đình Chiểu"


@pytest.mark.parametrize("bad", ["a\u0002b", "a\nb", "a\tb", "\u202eabc", "a\u0085", "x\ufeff"])
def test_one_line_text_refuses_control_characters(bad: str) -> None:
    with pytest.raises(ValidationError, match="control character"):
        Sample(name=bad)


@pytest.mark.parametrize("blank", ["", "   "])
def test_one_line_text_refuses_blank(blank: str) -> None:
    with pytest.raises(ValidationError):
        Sample(name=blank)


def test_multiline_text_keeps_tabs_and_newlines_and_refuses_other_controls() -> None:
    assert Sample(reason="Thiếu giấy tờ:\n\t- CCCD\r\n").reason == "Thiếu giấy tờ:\n\t- CCCD\r\n"
    for bad in ("a\u0000", "a\u001b[31m", "a\u007f", "\u2066x"):
        with pytest.raises(ValidationError, match="control character"):
            Sample(reason=bad)


def test_length_counts_after_normalisation() -> None:
    class Short(BaseModel):
        name: Annotated[Text, Field(max_length=1)]

    assert Short(name="e\u0301").name == "é"  # two code points, one after NFC
