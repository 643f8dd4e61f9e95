"""What the dossier page shows, as pure functions of review's task and intake's procedure: the
form's answers under the procedure's own labels, the documents to view inline, the history with
its deadlines, and why it waits (what the officer may do: allowed.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.portal.worktime import Translate, local, named
from shared import roles


@dataclass(frozen=True)
class Answer:
    label: str
    value: str


@dataclass(frozen=True)
class Section:
    title: str
    answers: list[Answer]


def label(spec: dict[str, Any], name: str, lang: str) -> str:
    """A field's label in `lang` from the form's schema: its description "Tiếng Việt / English",
    else the description in either, else its title, else its name."""
    described = str(spec.get("description") or "")
    if " / " in described:
        vi, _, en = described.partition(" / ")
        return vi.strip() if lang == "vi" else en.strip()
    if described and (lang == "en") == described.isascii():
        return described
    return str(spec.get("title") or described or name)


def _item_label(spec: dict[str, Any], name: str, lang: str, t: Translate) -> str:
    """A label inside a list's items: the schema's, else the portal's own for that field name
    (the forms' texts), else the name."""
    found = label(spec, name, lang)
    if found != name:
        return found
    try:
        return t(f"forms.field.{name}")
    except KeyError:
        return name


def shown(value: Any, t: Translate) -> str:
    """A value as a person reads it: dates dd/mm/yyyy, yes/no, lists joined."""
    if isinstance(value, bool):
        return t("dossier.yes") if value else t("dossier.no")
    if isinstance(value, list):
        return ", ".join(shown(v, t) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {shown(v, t)}" for k, v in value.items())
    text = str(value)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text).strftime("%d/%m/%Y")
    return text


def shown_answer(field: str, value: Any, t: Translate) -> str:
    """An answer as a person reads it; a coded choice (sex: female) by its name where the
    console has one (`value.<field>.<code>`)."""
    if isinstance(value, str):
        try:
            return t(f"value.{field}.{value}")
        except KeyError:
            pass
    return shown(value, t)


def size_text(size: int, lang: str) -> str:
    """A file's size for people: 512 B, 1,5 KB, 2,3 MB (a decimal comma in Vietnamese)."""
    if size < 1024:
        return f"{size} B"
    number, unit = (size / 1024, "KB") if size < 1024 * 1024 else (size / 1024 / 1024, "MB")
    text = f"{number:.1f}"
    return f"{text.replace('.', ',') if lang == 'vi' else text} {unit}"


def _resolve(spec: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = spec.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**defs.get(ref.removeprefix("#/$defs/"), {}), **{k: v for k, v in spec.items()}}
    return spec


def answers(
    schema: dict[str, Any] | None, form: dict[str, Any], lang: str, t: Translate
) -> list[Section]:
    """The form's answers, one section per group of the form (applicant, residence, ...),
    labelled as the procedure's form labels them; answers left empty are not listed."""
    schema = schema or {}
    defs = schema.get("$defs") or {}
    props: dict[str, Any] = schema.get("properties") or {}
    general: list[Answer] = []
    sections: list[Section] = []
    # With the procedure's schema, its fields only (not the envelope: procedure_code, ...).
    for name in props or form:
        value = form.get(name)
        if value is None or value == "" or value == []:
            continue
        spec = _resolve(props.get(name) or {}, defs)
        if isinstance(value, dict):
            inner = spec.get("properties") or {}
            rows = [
                Answer(label(_resolve(inner.get(k) or {}, defs), k, lang), shown_answer(k, v, t))
                for k, v in value.items()
                if v not in (None, "", [])
            ]
            # Every procedure has an applicant, described for developers: the page's own title.
            title = t("dossier.form.applicant") if name == "applicant" else label(spec, name, lang)
            sections.append(Section(title, rows))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            # A list of people or things (the members moving with the applicant): one line
            # each, every answer under its own label, coded choices by their names.
            item = _resolve(spec.get("items") or {}, defs)
            inner = item.get("properties") or {}
            for number, entry in enumerate(value, start=1):
                text = "; ".join(
                    f"{_item_label(_resolve(inner.get(k) or {}, defs), k, lang, t)}: "
                    f"{shown_answer(k, v, t)}"
                    for k, v in entry.items()
                    if v not in (None, "", [])
                )
                general.append(Answer(f"{label(spec, name, lang)} ({number})", text))
        else:
            general.append(Answer(label(spec, name, lang), shown_answer(name, value, t)))
    if general:
        sections.append(Section(t("dossier.form.other"), general))
    return sections


def form_of(dossier: dict[str, Any]) -> dict[str, Any]:
    """The form as submitted; older dossiers carry only the applicant and residence."""
    form = dossier.get("form")
    if isinstance(form, dict) and form:
        return form
    return {k: dossier[k] for k in ("applicant", "residence") if dossier.get(k)}


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    media_type: str
    size: int
    sha256: str
    url: str

    @property
    def kind(self) -> str:
        """How the page shows it: a PDF in a frame, an image, or a link only."""
        if self.media_type == "application/pdf":
            return "pdf"
        return "image" if self.media_type.startswith("image/") else "file"


def documents(
    code: str, dossier: dict[str, Any], procedure: dict[str, Any] | None, lang: str
) -> list[Document]:
    """The dossier's attachments with the procedure's names, each served by the portal."""
    names = {
        d.get("type"): d.get(f"name_{lang}") or d.get("name_vi")
        for d in (procedure or {}).get("documents", [])
        if isinstance(d, dict)
    }
    found = []
    for d in dossier.get("documents") or []:
        if not isinstance(d, dict) or not d.get("id"):
            continue
        kind = str(d.get("document_type") or "")
        found.append(
            Document(
                id=str(d["id"]),
                name=str(names.get(kind) or kind),
                media_type=str(d.get("media_type") or ""),
                size=int(d.get("size") or 0),
                sha256=str(d.get("sha256") or ""),
                url=f"/documents/{code}/{d['id']}",
            )
        )
    return found


def listed(listing: dict[str, Any], lang: str) -> list[Document]:
    """The documents intake lists for officers (those submitted and those supplements added),
    each served by the portal."""
    code = str(listing.get("dossier_code") or "")
    return [
        Document(
            id=str(d["id"]),
            name=str((d.get("name_en") if lang == "en" else None) or d.get("name") or d["id"]),
            media_type=str(d.get("content_type") or ""),
            size=int(d.get("size") or 0),
            sha256=str(d.get("sha256") or ""),
            url=f"/documents/{code}/{d['id']}",
        )
        for d in listing.get("documents") or []
        if isinstance(d, dict) and d.get("id")
    ]


@dataclass(frozen=True)
class Step:
    action: str
    actor: str
    at: str
    state: str
    due_at: str
    on_time: bool | None
    reason: str
    promised_at: str
    missing: str = ""  # the documents a supplement request asked for, by name


def history(
    task: dict[str, Any],
    t: Translate,
    names: Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
) -> list[Step]:
    """Each step the dossier took: who (by name when a colleague), when, against which
    deadline, on time or not, and the documents a supplement request asked for (named by
    the procedure's `kinds`)."""
    names = names or {}
    kinds = kinds or {}
    steps = []
    for s in task.get("history") or []:
        on_time = s.get("on_time")
        steps.append(
            Step(
                action=_step_name(s, t),
                actor=_who(str(s.get("decided_by") or s.get("officer_id") or ""), names, t),
                at=local(s.get("decided_at")),
                state=named("state", str(s.get("state") or ""), t),
                due_at=local(s.get("due_at")),
                on_time=on_time if isinstance(on_time, bool) else None,
                reason=str(s.get("reason") or ""),
                promised_at=local(s.get("promised_at")),
                missing=", ".join(kinds.get(str(m), str(m)) for m in s.get("missing") or []),
            )
        )
    return steps


def _step_name(step: dict[str, Any], t: Translate) -> str:
    """A step's name; a print names the slip printed."""
    name = named("action", str(step.get("action") or ""), t, step.get("name_vi"))
    slip = step.get("form")
    return f"{name}: {named('dossier.slip', str(slip), t)}" if slip else name


def _who(actor: str, names: Mapping[str, str], t: Translate) -> str:
    if actor in (roles.CITIZEN, roles.SYSTEM):
        return t(f"move.{actor}")
    name = names.get(actor)
    return f"{name} ({actor})" if name else actor


def why_waiting(task: dict[str, Any], t: Translate) -> str:
    """Why the dossier waits, in words: whose step it is, and whether the clock stands still."""
    waiting = task.get("waiting") or {}
    who = str(waiting.get("whose_move") or "nobody")
    known = (roles.OFFICER, roles.CHIEF, roles.SUPERVISOR, roles.CITIZEN)
    text = t(f"dossier.why.{who if who in known else 'nobody'}", state=task.get("state", ""))
    if waiting.get("clock") == "paused":
        text += " " + t("dossier.clock_paused")
    return text


NATIONAL_STATES = ("in_sync", "pending", "retrying")
NATIONAL_CSS = {"in_sync": "on_time", "pending": "due_soon", "retrying": "overdue"}


@dataclass(frozen=True)
class NationalSync:
    """The dossier's synchronisation with the national portal (Cổng DVC quốc gia), as notify's
    `GET /v1/dvcqg/dossiers/{code}` reports it, in words."""

    state: str
    label: str
    css: str
    last_success_at: str = ""
    last_attempt_at: str = ""
    next_try_at: str = ""
    last_error: str = ""
    pending: int = 0


def national_sync(found: Mapping[str, Any] | None, t: Translate) -> NationalSync | None:
    """None when there is nothing to show (the sync is off, or knows nothing of the dossier);
    `found` = {"unavailable": True} when notify did not answer."""
    if found is None:
        return None
    if found.get("unavailable"):
        return NationalSync("unavailable", t("dossier.national.unavailable"), "muted")
    state = str(found.get("state") or "pending")
    state = state if state in NATIONAL_STATES else "pending"
    pending = found.get("pending") or []
    return NationalSync(
        state=state,
        label=t(f"dossier.national.state.{state}"),
        css=NATIONAL_CSS[state],
        last_success_at=local(found.get("last_success_at")),
        last_attempt_at=local(found.get("last_attempt_at")),
        next_try_at=local(found.get("next_try_at")) if state != "in_sync" else "",
        last_error=str(found.get("last_error") or "") if state != "in_sync" else "",
        pending=len(pending) if isinstance(pending, list) else 0,
    )


def document_kinds(procedure: Mapping[str, Any] | None, lang: str) -> list[tuple[str, str]]:
    """The procedure's document types with their names in `lang`: what a supplement request
    may ask the citizen for."""
    out = []
    for spec in (procedure or {}).get("documents") or []:
        if isinstance(spec, dict) and spec.get("type"):
            kind = str(spec["type"])
            out.append((kind, str(spec.get(f"name_{lang}") or spec.get("name_vi") or kind)))
    return out
