"""The portal's forms from intake's JSON Schema: every procedure of the catalogue renders, posts
back to the JSON it came from, and shows the API's field errors beside their fields."""

from __future__ import annotations

import json
import unicodedata
from html.parser import HTMLParser
from typing import Any

import pytest

from services.intake.catalogue import Procedure, load_catalogue
from services.portal import forms
from services.portal.assets import Assets
from services.portal.i18n import Catalogue
from services.portal.rendering import Pages

CATALOGUE = list(load_catalogue())
TEXTS = Catalogue()
ENV = Pages(Assets(), TEXTS, "vi").env
MACRO = ENV.from_string(
    '{% import "forms/fields.html" as forms with context %}'
    "{{ forms.errors_summary(errors, shown) }}"
    "{{ forms.fields(layout, values, errors, form_hint) }}"
)


def schema_of(procedure: Procedure) -> dict[str, Any]:
    """What intake's GET /v1/procedures/{code} answers as `form_schema`."""
    schema: dict[str, Any] = json.loads(json.dumps(procedure.model.model_json_schema()))
    return schema


def fields_of(procedure: Procedure) -> list[forms.Field]:
    texts = {lang: TEXTS.translator(lang) for lang in ("vi", "en")}
    return forms.describe(schema_of(procedure), texts)


def render(
    fields: list[forms.Field],
    values: dict[str, str],
    errors: forms.Errors | None = None,
    lang: str = "vi",
) -> str:
    layout = forms.layout(fields, values)
    return MACRO.render(
        layout=layout,
        values=values,
        errors=errors or forms.Errors(),
        shown=forms.index(layout),
        form_hint=forms.hint,
        lang=lang,
        t=TEXTS.translator(lang),
    )


class Controls(HTMLParser):
    """What a browser would post from the page: each input, select and textarea's value."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.labels: dict[str, str] = {}  # for= → text
        self.ids: dict[str, dict[str, str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids[a["id"]] = {"tag": tag, **a}
        if tag == "input":
            self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a["name"]
            self.values.setdefault(a["name"], "")
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a["value"]
        elif tag == "textarea":
            self._textarea = a["name"]
            self.values[a["name"]] = ""
        elif tag == "label":
            self._label = a.get("for")
            self.labels[a.get("for", "")] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data
        if self._label is not None:
            self.labels[self._label] += data


def controls(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@pytest.mark.parametrize("procedure", CATALOGUE, ids=lambda p: p.code)
def test_every_procedure_renders_and_posts_back_to_the_same_json(procedure: Procedure) -> None:
    fields = fields_of(procedure)
    example = as_json(procedure.example)
    page = controls(render(fields, forms.flatten(example)))
    posted = forms.read(fields, page.values)
    assert posted == example
    procedure.model.model_validate(posted)  # and intake takes it


@pytest.mark.parametrize("procedure", CATALOGUE, ids=lambda p: p.code)
def test_every_input_has_a_label_in_both_languages(procedure: Procedure) -> None:
    fields = fields_of(procedure)
    for lang in ("vi", "en"):
        page = controls(render(fields, {}, lang=lang))
        inputs = [i for i, a in page.ids.items() if a["tag"] in ("input", "select", "textarea")]
        assert inputs
        for input_id in inputs:
            assert page.labels.get(input_id, "").strip(), f"{input_id} has no label"


def test_a_blank_form_posts_only_the_required_groups() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "1.004222")
    fields = fields_of(procedure)
    page = controls(render(fields, {}))
    assert forms.read(fields, page.values) == {"applicant": {}, "residence": {}}


def test_kinds_labels_and_constraints_come_from_the_schema() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "1.004222")
    shown = forms.index(forms.layout(fields_of(procedure), {}))
    phone = shown["applicant.phone"]
    assert (phone.kind, phone.required, phone.label_vi) == ("phone", True, "Số điện thoại di động")
    assert shown["applicant.email"].kind == "email" and not shown["applicant.email"].required
    assert shown["applicant.date_of_birth"].kind == "date"
    assert shown["applicant.personal_id"].digits == 12
    ward = shown["residence.ward_code"]
    assert (ward.label_vi, ward.label_en) == ("Mã phường/xã", "Commune/ward code")
    basis = shown["residence.housing_basis"]
    assert basis.kind == "select"
    assert [c.label_vi for c in basis.choices][:2] == ["Nhà thuộc sở hữu", "Thuê"]
    members = shown["members"]
    assert members.shape == "array" and members.max_items == 15 and not members.required
    assert shown["members.0.sex"].kind == "select"
    assert shown["residence.address"].min_length == 5
    # Inside an optional group nothing is required on its own; inside a required one it is.
    assert not shown["household_head"].required
    assert not shown["household_head.full_name"].required
    assert not shown["members.0.full_name"].required
    assert shown["residence.address"].required and shown["applicant.full_name"].required


def test_numbers_are_typed_and_a_bad_number_goes_as_typed() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "nop-phat-giao-thong")
    fields = fields_of(procedure)
    values = forms.flatten(as_json(procedure.example))
    assert isinstance(forms.read(fields, values)["amount"], int)
    values["amount"] = "năm mươi"
    assert forms.read(fields, values)["amount"] == "năm mươi"


def test_list_rows_keep_their_numbers_and_blank_rows_are_dropped() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "1.004222")
    fields = fields_of(procedure)
    values = forms.flatten(as_json(procedure.example))
    values["members.1.full_name"] = "  "
    values["members.2.full_name"] = "Trần Văn Nam"
    layout = forms.layout(fields, values)
    rows = forms.index(layout)["members"].rows
    assert [r.path for r in rows] == ["members.0", "members.1", "members.2", "members.3"]
    members = forms.read(fields, values)["members"]
    assert [m["full_name"] for m in members] == ["Trần Thị Hoa", "Trần Văn Nam"]


def test_a_refused_form_keeps_its_values_and_shows_each_error_beside_its_field() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "1.004222")
    fields = fields_of(procedure)
    values = forms.flatten(as_json(procedure.example))
    values["applicant.phone"] = "12345"
    layout = forms.layout(fields, values)
    api_errors = [
        {
            "field": "applicant.phone",
            "message": "Không phải số di động Việt Nam (10 số, bắt đầu 03, 05, 07, 08 hoặc 09).",
        },
        {"field": "members.0.relationship", "message": "Quá dài."},
        {"field": "residence", "message": "Trường này là bắt buộc."},
        {"field": "notify_by", "message": "Không thuộc các giá trị cho phép."},
    ]
    errors = forms.place_errors(api_errors, forms.index(layout))
    assert errors.of("applicant.phone") and errors.of("members.0.relationship")
    assert errors.unplaced == [("notify_by", "Không thuộc các giá trị cho phép.")]
    html = render(fields, values, errors)
    page = controls(html)
    assert page.values["applicant.phone"] == "12345"
    assert page.values["applicant.full_name"] == "Trần Văn Minh"
    phone = page.ids["f-applicant-phone"]
    assert phone["aria-invalid"] == "true"
    assert set(phone["aria-describedby"].split()) == {
        "f-applicant-phone-hint",
        "f-applicant-phone-error",
    }
    error = html.split('id="f-applicant-phone-error"', 1)[1].split("</p>", 1)[0]
    assert "Không phải số di động Việt Nam" in error
    assert page.ids["f-residence"]["aria-describedby"] == "f-residence-error"
    summary = html.split('id="form-errors"', 1)[1].split("</div>", 1)[0]
    assert 'href="#f-applicant-phone"' in summary and "Số điện thoại di động:" in summary
    assert "Không thuộc các giá trị cho phép." in summary
    assert "aria-invalid" not in page.ids["f-applicant-full_name"]


def test_an_error_on_a_field_the_page_lacks_lands_on_its_nearest_group() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "1.004222")
    layout = forms.layout(fields_of(procedure), {})
    errors = forms.place_errors(
        [{"field": "residence.extra", "message": "Trường này không có trong mẫu."}],
        forms.index(layout),
    )
    assert errors.of("residence") == ["Trường này không có trong mẫu."]


def test_english_pages_show_english_labels_and_choices() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "1.003677")
    html = render(fields_of(procedure), {}, lang="en")
    assert "Absent from" in html and ">Work<" in html and "Tạm vắng" not in html


def test_a_decomposed_name_is_sent_composed() -> None:
    procedure = next(p for p in CATALOGUE if p.code == "1.004222")
    fields = fields_of(procedure)
    values = forms.flatten(as_json(procedure.example))
    values["applicant.full_name"] = unicodedata.normalize("NFD", "Nguyễn Thị Ánh Tuyết")
    sent = forms.read(fields, values)["applicant"]["full_name"]
    assert sent == "Nguyễn Thị Ánh Tuyết" and unicodedata.is_normalized("NFC", sent)
