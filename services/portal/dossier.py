"""The dossier page: the applicant and the form, the documents viewed inline, the history, why
it waits and whose move it is, and the actions this officer may take now."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.portal import allowed
from services.portal import dossier_view as view
from services.portal.clients import ApiProblem, Apis
from services.portal.queues import colleagues, names_of, whose_move
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer
from services.portal.worktime import deadline, local, named
from shared import roles

router = APIRouter(include_in_schema=False)
NOTICES = {"claim", "release", "reassign", "apology"}
"""What a notice after a POST may name: these and the workflow's actions (`action.*`)."""


async def _procedure(apis: Apis, code: str, lang: str) -> dict[str, Any] | None:
    try:
        found = await apis.get("intake", f"/v1/procedures/{code}", token=None, lang=lang)
    except ApiProblem as exc:
        if exc.status == 404:  # a procedure since removed: the answers keep their own names
            return None
        raise
    return found if isinstance(found, dict) else None


async def _documents(
    apis: Apis,
    officer: SignedInOfficer,
    task: dict[str, Any],
    procedure: dict[str, Any] | None,
    lang: str,
) -> tuple[list[view.Document], str]:
    """The dossier's documents as intake lists them for this officer, and why none are shown
    when intake refuses (its message); from an older intake, those recorded on submission."""
    code = str(task["dossier_code"])
    try:
        listing = await apis.get(
            "intake", f"/v1/officer/dossiers/{code}/documents", token=officer.token, lang=lang
        )
    except ApiProblem as exc:
        if exc.status == 403:
            return [], exc.detail
        if exc.status != 404 or exc.code == "dossier_not_found":
            raise
        return view.documents(code, task.get("dossier") or {}, procedure, lang), ""
    return view.listed(listing if isinstance(listing, dict) else {}, lang), ""


async def _officers(
    apis: Apis, officer: SignedInOfficer, task: dict[str, Any], me: dict[str, Any], lang: str
) -> list[Any]:
    """Who a supervisor may hand the task to: the active officers and chiefs of its unit but
    its holder, from
    review's GET /v1/me when it is the supervisor's own unit, else from the admin API when this
    officer may read it (else they type the officer's id)."""
    unit = str(task["unit_id"])
    if (me.get("unit") or {}).get("id") == unit:
        found: Any = [{**o, "unit": unit} for o in me.get("officers") or []]
    else:
        try:
            found = await apis.get("review", "/v1/admin/officers", token=officer.token, lang=lang)
        except ApiProblem as exc:
            if exc.status in (403, 404):
                return []
            raise
    return [
        o
        for o in found or []
        if isinstance(o, dict)
        and o.get("unit") == unit
        and o.get("role") in roles.HOLDERS
        and o.get("active", True)
        and o.get("id") != task.get("officer_id")
    ]


async def _national(
    apis: Apis, officer: SignedInOfficer, code: str, lang: str
) -> dict[str, Any] | None:
    """The dossier's sync with the national portal, from notify; None when the sync is off or
    knows nothing of it (404), {"unavailable": True} when notify cannot say: the page still
    shows, without it."""
    try:
        found = await apis.get(
            "notify", f"/v1/dvcqg/dossiers/{code}", token=officer.token, lang=lang
        )
    except ApiProblem as exc:
        return None if exc.status == 404 else {"unavailable": True}
    return found if isinstance(found, dict) else None


async def load_task(request: Request, officer: SignedInOfficer, task_id: str) -> Any:
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    return await apis.get(
        "review", f"/v1/tasks/{task_id}", token=officer.token, lang=pages.language(request)
    )


async def render(
    request: Request,
    officer: SignedInOfficer,
    task: dict[str, Any],
    *,
    status: int = 200,
    problem: ApiProblem | None = None,
    problem_form: str = "",
    notice: str = "",
) -> Response:
    """The dossier page of `task`; a refused form's problem shown beside that form."""
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    lang = pages.language(request)
    t = pages.catalogue.translator(lang)
    dossier = task.get("dossier") or {}
    # The national portal's sync state is its own service's: asked meanwhile, not after.
    national = asyncio.create_task(_national(apis, officer, str(task["dossier_code"]), lang))
    procedure = await _procedure(apis, str(task["procedure_code"]), lang)
    offered = allowed.holding(task, officer, datetime.now(UTC))
    documents, documents_refused = await _documents(apis, officer, task, procedure, lang)
    me = await colleagues(apis, officer, lang)
    names = names_of(me)
    officers = await _officers(apis, officer, task, me, lang) if "reassign" in offered else []
    buttons = allowed.buttons(task, t)
    kinds = view.document_kinds(procedure, lang)
    beside = problem_form in allowed.form_ids(buttons, offered)
    return pages.render(
        request,
        "dossier/page.html",
        status=status,
        task=task,
        state=named("state", str(task.get("state") or ""), t),
        applicant=dossier.get("applicant") or {},
        sections=view.answers((procedure or {}).get("form_schema"), view.form_of(dossier), lang, t),
        documents=documents,
        size_text=view.size_text,
        documents_refused=documents_refused,
        history=view.history(task, t, names, dict(kinds)),
        apologised=any(s.get("action") == "apologise" for s in task.get("history") or []),
        deadline=deadline(task, t),
        whose_move=whose_move(task, t, officer.id, names),
        holder=names.get(task.get("officer_id") or "", task.get("officer_id") or ""),
        since=local((task.get("waiting") or {}).get("since")),
        promised_at=local(task.get("promised_at")),
        why=view.why_waiting(task, t),
        buttons=buttons,
        document_kinds=kinds,
        holding=offered,
        officers=officers,
        problem=problem,
        problem_form=problem_form if beside else "",
        problem_top=None if beside else problem,
        notice=notice,
        national=view.national_sync(await national, t),
    )


@router.get("/dossiers")
async def by_code(
    request: Request, officer: Officer, code: str = Query(default="", max_length=50)
) -> Response:
    """A dossier by its code (or an applicant's phone): straight to its page when one matches,
    else the search's results in the queues."""
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    lang = pages.language(request)
    code = code.strip()
    found = (
        await apis.get(
            "review", "/v1/tasks", token=officer.token, lang=lang, params={"q": code, "limit": 5}
        )
        if code
        else []
    )
    if isinstance(found, list) and len(found) == 1:
        return RedirectResponse(f"/dossiers/{found[0]['id']}", 303)
    return RedirectResponse("/queues?" + urlencode({"q": code}) if code else "/queues", 303)


@router.get("/dossiers/{task_id}")
async def dossier_page(request: Request, officer: Officer, task_id: str) -> Response:
    task = await load_task(request, officer, task_id)
    done = request.query_params.get("done", "")
    pages: Pages = request.app.state.pages
    t = pages.catalogue.translator(pages.language(request))
    notice = ""
    if done in NOTICES:
        notice = t(f"dossier.done.{done}")
    elif done:
        name = named("action", done, t)
        notice = t("dossier.done.action", action=name) if name != done else ""
    return await render(request, officer, task, notice=notice)
