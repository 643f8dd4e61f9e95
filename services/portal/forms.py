"""A procedure's form, from the JSON Schema intake publishes, as typed field descriptions that a
Jinja macro renders (templates/forms/fields.html), and the posted form read back into the JSON
the API expects. Pure functions: the desk uses them, the citizen pages can too.

Fields are named by their dotted path (`applicant.phone`, `members.0.full_name`), the same path
the API's problem+json names in `errors[].field`, so each error lands beside its field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Kind = Literal["text", "textarea", "date", "select", "phone", "email", "number", "boolean"]
Shape = Literal["scalar", "group", "array"]
Texts = Callable[..., str]

EXTRA_ROWS = 1
"""Blank rows offered under a list's filled ones (no JavaScript needed to add one)."""
LONG_TEXT = 300
"""Texts allowed longer than this are a text area."""
_PHONE_NAMES = re.compile(r"(^|_)(phone|mobile)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_DIGITS = re.compile(r"^\^\\d\{(\d+)\}\$$")


@dataclass(frozen=True)
class Choice:
    """One option of a select: the value sent, its label in each language."""

    value: str
    label_vi: str
    label_en: str

    def label(self, lang: str) -> str:
        return self.label_vi if lang == "vi" else self.label_en


@dataclass(frozen=True)
class Field:
    """One field of a form (or a group, or a list of groups), as the page shows it."""

    path: str
    name: str
    label_vi: str
    label_en: str
    shape: Shape = "scalar"
    kind: Kind = "text"
    required: bool = False
    choices: tuple[Choice, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    fields: tuple[Field, ...] = ()
    """A group's fields; a list's fields of one row (paths with `{i}` for the row)."""
    rows: tuple[Field, ...] = ()
    """A list's rows as shown (groups with concrete paths), made by `layout`."""

    @property
    def id(self) -> str:
        """The HTML id of the input (`f-applicant-phone`)."""
        return "f-" + _UNSAFE.sub("-", self.path)

    def label(self, lang: str) -> str:
        return self.label_vi if lang == "vi" else self.label_en

    @property
    def digits(self) -> int | None:
        """How many digits the field takes, when its pattern is exactly that (`^\\d{12}$`)."""
        match = _DIGITS.match(self.pattern or "")
        return int(match.group(1)) if match else None


def describe(schema: Mapping[str, Any], texts: Mapping[str, Texts] | None = None) -> list[Field]:
    """The fields of a form's JSON Schema (pydantic's: `$defs`, `$ref`, `anyOf` with null for an
    optional field). `texts` (vi and en translators) name the fields the schema leaves unlabelled
    and the choices of a select."""
    defs: Mapping[str, Any] = schema.get("$defs", {})
    return _fields(schema, defs, "", texts or {})


def _fields(
    schema: Mapping[str, Any], defs: Mapping[str, Any], prefix: str, texts: Mapping[str, Texts]
) -> list[Field]:
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        out.append(_field(name, prop, defs, prefix, name in required, texts))
    return out


def _resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema itself: `$ref` followed, an optional's non-null branch taken."""
    for option in prop.get("anyOf", ()):
        if option.get("type") != "null":
            return {**_resolve(option, defs), **{k: v for k, v in prop.items() if k != "anyOf"}}
    ref = prop.get("$ref")
    if isinstance(ref, str):
        target = defs[ref.rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _field(
    name: str,
    raw: Mapping[str, Any],
    defs: Mapping[str, Any],
    prefix: str,
    required: bool,
    texts: Mapping[str, Texts],
) -> Field:
    path = prefix + name
    # The property's own description is its label (a $def's describes the model, not the field).
    description = raw.get("description")
    prop = _resolve(raw, defs)
    label_vi, label_en = _labels(name, description if isinstance(description, str) else "", texts)
    base = Field(path=path, name=name, label_vi=label_vi, label_en=label_en, required=required)
    if prop.get("type") == "object" or "properties" in prop:
        children = _fields(prop, defs, path + ".", texts)
        return replace(base, shape="group", fields=_within(children, required))
    if prop.get("type") == "array":
        item = _resolve(prop.get("items", {}), defs)
        return replace(
            base,
            shape="array",
            fields=_within(_fields(item, defs, path + ".{i}.", texts), required),
            min_items=prop.get("minItems"),
            max_items=prop.get("maxItems"),
        )
    return replace(
        base,
        kind=_kind(name, prop),
        choices=tuple(_choice(str(v), texts) for v in prop.get("enum", ())),
        min_length=prop.get("minLength"),
        max_length=prop.get("maxLength"),
        pattern=prop.get("pattern"),
        minimum=prop.get("minimum"),
        maximum=prop.get("maximum"),
    )


def _within(children: list[Field], required: bool) -> tuple[Field, ...]:
    """A group's fields; inside an optional group none is required on its own (the API says
    which are missing once the group is filled in)."""
    if required:
        return tuple(children)
    return tuple(
        replace(c, required=False, fields=_within(list(c.fields), False)) for c in children
    )


def _kind(name: str, prop: Mapping[str, Any]) -> Kind:
    if "enum" in prop:
        return "select"
    fmt, kind = prop.get("format"), prop.get("type")
    if fmt == "date":
        return "date"
    if fmt == "email":
        return "email"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    # A mobile number is a string to JSON Schema: known by its name (applicant.phone, ...).
    if _PHONE_NAMES.search(name):
        return "phone"
    if (prop.get("maxLength") or 0) > LONG_TEXT:
        return "textarea"
    return "text"


def _labels(name: str, description: str, texts: Mapping[str, Texts]) -> tuple[str, str]:
    """(vi, en): the procedure's own "vi / en" label, else the portal's for this field name,
    else whatever the schema says, else the name."""
    parts = [p.strip() for p in description.split(" / ")]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    fallback = description or name.replace("_", " ").capitalize()
    return _text_of(f"forms.field.{name}", texts, fallback)


def _choice(value: str, texts: Mapping[str, Texts]) -> Choice:
    return Choice(value, *_text_of(f"forms.value.{value}", texts, value))


def _text_of(key: str, texts: Mapping[str, Texts], fallback: str) -> tuple[str, str]:
    found = []
    for lang in ("vi", "en"):
        t = texts.get(lang)
        try:
            found.append(t(key) if t else fallback)
        except KeyError:
            found.append(fallback)
    return found[0], found[1]


def layout(fields: Iterable[Field], values: Mapping[str, str]) -> list[Field]:
    """The fields as the page shows them: each list with its rows (those filled in `values`,
    then blank ones, within its bounds), paths made concrete."""
    out = []
    for f in fields:
        if f.shape == "group":
            out.append(replace(f, fields=tuple(layout(f.fields, values))))
        elif f.shape == "array":
            out.append(replace(f, rows=tuple(_rows(f, values))))
        else:
            out.append(f)
    return out


def _rows(f: Field, values: Mapping[str, str]) -> list[Field]:
    filled = _indices(f.path, values)
    count = (max(filled) + 1 if filled else 0) + EXTRA_ROWS
    count = max(count, f.min_items or 0)
    if f.max_items is not None:
        count = min(count, f.max_items)
    rows = []
    for i in range(count):
        row = tuple(_at(child, f.path, i) for child in f.fields)
        rows.append(
            Field(
                path=f"{f.path}.{i}",
                name=str(i),
                label_vi=f"{f.label_vi} — {i + 1}",
                label_en=f"{f.label_en} — {i + 1}",
                shape="group",
                fields=tuple(layout(row, values)),
            )
        )
    return rows


def _at(f: Field, array_path: str, i: int) -> Field:
    """A row's field with its `{i}` made the row number (also in nested groups)."""
    template = array_path + ".{i}."
    concrete = f"{array_path}.{i}."
    return replace(
        f,
        path=f.path.replace(template, concrete, 1),
        fields=tuple(_at(c, array_path, i) for c in f.fields),
    )


def _indices(path: str, values: Mapping[str, str]) -> list[int]:
    """The rows of list `path` that hold something in `values`."""
    found = set()
    head = path + "."
    for key, value in values.items():
        if key.startswith(head) and value.strip():
            number = key[len(head) :].split(".", 1)[0]
            if number.isdigit():
                found.add(int(number))
    return sorted(found)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """JSON (an example, a stored form) as the page's values: dotted path → text."""
    out: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out.update(flatten(item, f"{path}.{i}."))
                else:
                    out[f"{path}.{i}"] = _text(item)
        elif value is not None:
            out[path] = _text(value)
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read(fields: Iterable[Field], posted: Mapping[str, str]) -> dict[str, Any]:
    """The posted form as the API's JSON: texts stripped, empty fields left out (the API says
    which are required), numbers and booleans typed, a list's blank rows dropped. A value that
    does not parse is sent as typed, for the API to name the error."""
    return _read(list(fields), posted, "")


def _read(fields: list[Field], posted: Mapping[str, str], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        path = prefix + f.name
        if f.shape == "group":
            group = _read(list(f.fields), posted, path + ".")
            if group or f.required:
                # A required group goes even empty, so the API names each missing field.
                out[f.name] = group
        elif f.shape == "array":
            rows = []
            for i in _indices(path, posted):
                row = _read(list(f.fields), posted, f"{path}.{i}.")
                if row:
                    rows.append(row)
            if rows or f.required:
                out[f.name] = rows
        else:
            value = _scalar(f, posted.get(path, ""))
            if value is not None:
                out[f.name] = value
    return out


def _scalar(f: Field, raw: str) -> Any:
    # NFC: a name pasted from a PDF or typed on some keyboards arrives decomposed.
    text = unicodedata.normalize("NFC", raw.strip())
    if not text:
        return None
    if f.kind == "number":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text.replace(",", "."))
            except ValueError:
                return text
    if f.kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


def index(fields: Iterable[Field]) -> dict[str, Field]:
    """Every field a laid-out form shows (fields, groups, lists, rows), by path."""
    found: dict[str, Field] = {}
    for f in fields:
        found[f.path] = f
        found.update(index(f.fields))
        found.update(index(f.rows))
    return found


@dataclass(frozen=True)
class Errors:
    """The API's field errors by path, and those no field on the page shows (a summary)."""

    by_path: dict[str, list[str]] = field(default_factory=dict)
    unplaced: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.by_path or self.unplaced)

    def of(self, path: str) -> list[str]:
        return self.by_path.get(path, [])


def place_errors(errors: Iterable[Mapping[str, Any]], shown: Mapping[str, Field]) -> Errors:
    """Put each problem+json field error (`{"field": "a.b", "message": ...}`, in the page's
    language already) beside the field it names, or on the nearest group shown."""
    by_path: dict[str, list[str]] = {}
    unplaced: list[tuple[str, str]] = []
    for error in errors:
        where = str(error.get("field") or "")
        message = str(error.get("message") or "")
        target = where
        while target and target not in shown:
            target = target.rpartition(".")[0]
        if target:
            by_path.setdefault(target, []).append(message)
        else:
            unplaced.append((where, message))
    return Errors(by_path, unplaced)


def hint(f: Field, t: Texts) -> str:
    """What the field takes, said before the officer types (empty: nothing to say)."""
    if f.kind == "phone":
        return t("forms.hint.phone")
    if f.kind == "email":
        return t("forms.hint.email")
    if f.digits is not None:
        return t("forms.hint.digits", count=f.digits)
    if f.kind == "number" and f.minimum is not None and f.maximum is not None:
        return t("forms.hint.range", minimum=_number(f.minimum), maximum=_number(f.maximum))
    return ""


def _number(value: float) -> str:
    return f"{value:,.0f}".replace(",", ".")
