"""The officer's home: work queues by stage (tabs with counts), filtered by whose work it is,
ward, procedure and state, or searched by dossier code or phone; soonest due first, paged with
review's cursor. Plain links and GET forms; htmx may swap only the table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.portal.clients import ApiProblem, Apis
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer
from services.portal.worktime import Deadline, Translate, deadline, named
from shared import roles

router = APIRouter(include_in_schema=False)
STAGES = ("reception", "in_process", "waiting_citizen", "handover")
TABS = (*STAGES, "overdue", "due_soon")
SCOPES = ("mine", "unit", "unassigned")
PAGE_SIZE = 25
OPEN_STATES = ("receiving", "checking", "approving", "supplement", "payment", "decided")
"""The open states of the workflows the filter offers (a URL may name any other)."""


@dataclass(frozen=True)
class QueueQuery:
    """What the officer asked to see: one tab, narrowed by the filters, or a search."""

    tab: str = "reception"
    scope: str = ""
    ward: str = ""
    procedure: str = ""
    state: str = ""
    q: str = ""
    cursor: str = ""
    size: int = PAGE_SIZE

    @classmethod
    def parse(cls, raw: dict[str, str], officer: SignedInOfficer) -> QueueQuery:
        """The query from the page's URL; unknown tabs and scopes fall back to the defaults."""
        tab = raw.get("tab", "")
        scope = raw.get("scope", "")
        return cls(
            tab=tab if tab in TABS else "reception",
            scope=scope if scope in scopes_for(officer.role) else "",
            ward=raw.get("ward", "").strip()[:20],
            procedure=raw.get("procedure", "").strip()[:50],
            state=raw.get("state", "").strip()[:50],
            q=raw.get("q", "").strip()[:50],
            cursor=raw.get("cursor", "")[:500],
            size=_size(raw.get("size", "")),
        )

    def api_params(self) -> dict[str, Any]:
        """The query of review's GET /v1/tasks for this tab and these filters."""
        limit = self.size
        if self.q:  # a search ignores the tab and the filters, as the API does
            return {"q": self.q, "limit": limit}
        params: dict[str, Any] = {
            "scope": self.scope,
            "ward": self.ward,
            "procedure": self.procedure,
            "state": self.state,
            "cursor": self.cursor,
            "limit": limit,
        }
        if self.tab in STAGES:
            params["stage"] = self.tab
        elif self.tab == "overdue":
            params["overdue"] = "true"
        else:
            params["due_soon"] = "true"
        return params

    def link(self, **changes: Any) -> str:
        """This page's URL with some of the query changed (a new tab or filter: first page)."""
        changed = replace(self, **{"cursor": "", **changes})
        pairs = {
            k: v
            for k, v in vars(changed).items()
            if v and not (k == "tab" and changed.q) and not (k == "size" and v == PAGE_SIZE)
        }
        return "/queues?" + urlencode(pairs) if pairs else "/queues"


def states(current: str, t: Translate) -> list[tuple[str, str]]:
    """The states the filter offers, by name, with the one in force even if not listed."""
    codes = [*OPEN_STATES, *([current] if current and current not in OPEN_STATES else [])]
    return [(code, named("state", code, t)) for code in codes]


def _size(raw: str) -> int:
    """Rows a page: 1 to 100 (review's limit is 200), else the default."""
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 100 else PAGE_SIZE


def scopes_for(role: str) -> tuple[str, ...]:
    """The scopes a role may pick: a plain officer does not see the whole unit's queue."""
    return tuple(s for s in SCOPES if s != "unit" or role != roles.OFFICER)


def tab_counts(counts: dict[str, Any] | None) -> dict[str, int]:
    """Each tab's count from review's GET /v1/tasks/counts (empty: no count shown)."""
    if not counts:
        return {}
    found = {
        str(s.get("stage")): int(s.get("total", 0))
        for s in counts.get("stages", [])
        if isinstance(s, dict)
    }
    found["overdue"] = int(counts.get("overdue", 0))
    found["due_soon"] = int(counts.get("due_soon", 0))
    return {tab: found[tab] for tab in TABS if tab in found}


@dataclass(frozen=True)
class Row:
    """One task as a queue row shows it."""

    id: str
    code: str
    applicant: str
    phone: str
    procedure: str
    state: str
    deadline: Deadline
    whose_move: str
    holder: str


Names = Mapping[str, str]
"""Officers' names by id (the caller's unit, from review's GET /v1/me)."""


def whose_move(task: dict[str, Any], t: Translate, me: str, names: Names | None = None) -> str:
    """Whose move it is, in words: the citizen, the unit's chief, me, a colleague by name,
    anyone of the unit."""
    waiting = task.get("waiting") or {}
    who = str(waiting.get("whose_move") or "nobody")
    if who == roles.OFFICER:
        holder = task.get("officer_id")
        if holder is None:
            return t("move.unassigned")
        if holder == me:
            return t("move.me")
        return t("move.officer", officer=(names or {}).get(holder, holder))
    if who in (roles.CHIEF, roles.SUPERVISOR, roles.CITIZEN):
        return t(f"move.{who}")
    return t("move.nobody")


def row(task: dict[str, Any], t: Translate, me: str, names: Names | None = None) -> Row:
    dossier = task.get("dossier") or {}
    applicant = dossier.get("applicant") or {}
    return Row(
        id=str(task["id"]),
        code=str(task["dossier_code"]),
        applicant=str(applicant.get("full_name") or ""),
        phone=str(applicant.get("phone") or ""),
        procedure=str(task.get("procedure_name") or task.get("procedure_code") or ""),
        state=named("state", str(task.get("state") or ""), t),
        deadline=deadline(task, t),
        whose_move=whose_move(task, t, me, names),
        holder=str((names or {}).get(task.get("officer_id") or "") or task.get("officer_id") or ""),
    )


async def colleagues(apis: Apis, officer: SignedInOfficer, lang: str) -> dict[str, Any]:
    """Who the officer is and their unit's officers (review's GET /v1/me; {} from an older
    review)."""
    try:
        found = await apis.get("review", "/v1/me", token=officer.token, lang=lang)
    except ApiProblem as exc:
        if exc.status == 404:
            return {}
        raise
    return found if isinstance(found, dict) else {}


def names_of(me: dict[str, Any]) -> dict[str, str]:
    return {
        str(o["id"]): str(o.get("name") or o["id"])
        for o in me.get("officers") or []
        if isinstance(o, dict) and o.get("id")
    }


async def _counts(apis: Apis, officer: SignedInOfficer, lang: str, scope: str) -> Any:
    try:
        return await apis.get(
            "review", "/v1/tasks/counts", token=officer.token, lang=lang, params={"scope": scope}
        )
    except ApiProblem as exc:
        if exc.status in (404, 405, 422):  # an older review without counts: none shown
            return None
        raise


async def _procedures(apis: Apis, lang: str) -> list[dict[str, Any]]:
    found = await apis.get("intake", "/v1/procedures", token=None, lang=lang)
    return [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []


@router.get("/queues")
async def queues(request: Request, officer: Officer) -> Response:
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    lang = pages.language(request)
    t = pages.catalogue.translator(lang)
    query = QueueQuery.parse(dict(request.query_params), officer)
    answer = await apis.call(
        "GET", "review", "/v1/tasks", token=officer.token, lang=lang, params=query.api_params()
    )
    tasks = answer.body if isinstance(answer.body, list) else []
    next_cursor = "" if query.q else answer.headers.get("x-next-cursor", "")
    fragment = bool(request.headers.get("hx-request")) and not request.headers.get(
        "hx-history-restore-request"
    )
    counts = await _counts(apis, officer, lang, query.scope)
    names = names_of(await colleagues(apis, officer, lang))
    return pages.render(
        request,
        "queues/view.html" if fragment else "queues/list.html",
        headers={"Vary": "HX-Request"},
        query=query,
        rows=[row(task, t, officer.id, names) for task in tasks],
        next_link=query.link(cursor=next_cursor) if next_cursor else "",
        first_link=query.link() if query.cursor else "",
        tabs=TABS,
        counts=tab_counts(counts),
        scopes=scopes_for(officer.role),
        states=states(query.state, t),
        procedures=await _procedures(apis, lang),
    )
