"""The dossier page's forms: a workflow action, claim, release, reassign and the apology with a
new date. Each posts to review with the officer's token, then redirects (303) back to the page
with a notice; a refusal shows review's message beside the form, with review's status, and
nothing has changed."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.portal import dossier
from services.portal.clients import ApiProblem, Apis
from services.portal.csrf import Checked
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer

router = APIRouter(include_in_schema=False)
VIETNAM_OFFSET = "+07:00"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}$")


def _text(form: Any, name: str, limit: int = 1000) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def promised_at(day: str | None, at: str | None) -> str | None:
    """The new promised moment as review wants it: ISO 8601 with Vietnam's offset (the date
    and time an officer enters are Vietnam's); None when the date is missing or malformed."""
    if not day or not _DATE.match(day):
        return None
    clock = at if at and _TIME.match(at) else "16:00"
    return f"{day}T{clock}:00{VIETNAM_OFFSET}"


async def _run(
    request: Request,
    officer: SignedInOfficer,
    task_id: str,
    done: str,
    form_id: str,
    call: Awaitable[Any],
) -> Response:
    """Post to review; back to the page with a notice, or the page again with the problem."""
    try:
        await call
    except ApiProblem as exc:
        if exc.status in (401, 503):
            raise  # signed out again, or review down: the app's own pages say so
        task = await dossier.load_task(request, officer, task_id)
        return await dossier.render(
            request, officer, task, status=exc.status, problem=exc, problem_form=form_id
        )
    return RedirectResponse(f"/dossiers/{task_id}?done={done}#notice", 303)


def _post(
    request: Request, officer: SignedInOfficer, path: str, body: dict[str, Any]
) -> Awaitable[Any]:
    apis: Apis = request.app.state.apis
    pages: Pages = request.app.state.pages
    return apis.post("review", path, token=officer.token, lang=pages.language(request), json=body)


@router.post("/dossiers/{task_id}/actions")
async def take_action(request: Request, officer: Officer, task_id: str, _: Checked) -> Response:
    form = await request.form()
    action = _text(form, "action", 50) or ""
    body: dict[str, Any] = {"action": action, "reason": _text(form, "reason")}
    missing = [m for m in form.getlist("missing") if isinstance(m, str) and m]
    if missing:  # the documents a supplement request asks for
        body["missing"] = missing
    seen = _text(form, "version", 12)
    if seen and seen.isdigit():  # act only on the task as the page showed it
        body["expected_version"] = int(seen)
    call = _post(request, officer, f"/v1/tasks/{task_id}/actions", body)
    return await _run(request, officer, task_id, action, f"action-{action}", call)


@router.post("/dossiers/{task_id}/claim")
async def claim(request: Request, officer: Officer, task_id: str, _: Checked) -> Response:
    call = _post(request, officer, f"/v1/tasks/{task_id}/claim", {})
    return await _run(request, officer, task_id, "claim", "claim", call)


@router.post("/dossiers/{task_id}/release")
async def release(request: Request, officer: Officer, task_id: str, _: Checked) -> Response:
    form = await request.form()
    body = {"reason": _text(form, "reason")}
    call = _post(request, officer, f"/v1/tasks/{task_id}/release", body)
    return await _run(request, officer, task_id, "release", "release", call)


@router.post("/dossiers/{task_id}/reassign")
async def reassign(request: Request, officer: Officer, task_id: str, _: Checked) -> Response:
    form = await request.form()
    body = {"officer_id": _text(form, "officer_id", 100) or "", "reason": _text(form, "reason")}
    call = _post(request, officer, f"/v1/tasks/{task_id}/reassign", body)
    return await _run(request, officer, task_id, "reassign", "reassign", call)


@router.post("/dossiers/{task_id}/apology")
async def apology(request: Request, officer: Officer, task_id: str, _: Checked) -> Response:
    form = await request.form()
    day, at = _text(form, "promised_date", 10), _text(form, "promised_time", 5)
    body = {"reason": _text(form, "reason") or "", "promised_at": promised_at(day, at) or day}
    call = _post(request, officer, f"/v1/tasks/{task_id}/apology", body)
    return await _run(request, officer, task_id, "apology", "apology", call)
