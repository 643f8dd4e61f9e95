"""The national portal (Cổng DVC quốc gia) page, for admins and supervisors: re-send to the
portal every dossier changed since a date, over notify's `POST /v1/dvcqg/resync`. Notify
decides who may (its 403 shows beside the form) and whether the sync is on (its 404 says so);
a date that is not one, or one in the future, is refused here and nothing is sent."""

from __future__ import annotations

from datetime import date, datetime, time

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.portal.clients import ApiProblem, Apis
from services.portal.csrf import Checked
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer
from shared.calendar import VIETNAM

router = APIRouter(include_in_schema=False)
OPERATORS = ("admin", "supervisor")


def since_of(typed: str, today: date) -> datetime:
    """The start, in Vietnam's time, of the day typed as YYYY-MM-DD (what a date input sends);
    ValueError names what is wrong."""
    try:
        day = date.fromisoformat(typed.strip())
    except ValueError:
        raise ValueError("national.bad_date") from None
    if day > today:
        raise ValueError("national.future_date")
    return datetime.combine(day, time(0), tzinfo=VIETNAM)


def _page(
    request: Request, status: int = 200, typed: str = "", problem: ApiProblem | None = None
) -> Response:
    pages: Pages = request.app.state.pages
    return pages.render(
        request,
        "national.html",
        status=status,
        typed=typed or datetime.now(VIETNAM).date().isoformat(),
        queued=request.query_params.get("queued", "")[:10],
        problem=problem,
    )


@router.get("/admin/national")
async def national_page(request: Request, officer: Officer) -> Response:
    return _page(request)


@router.post("/admin/national/resync")
async def resync(request: Request, officer: Officer, _: Checked) -> Response:
    return await _resync(request, officer)


async def _resync(request: Request, officer: SignedInOfficer) -> Response:
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    lang = pages.language(request)
    t = pages.catalogue.translator(lang)
    form = await request.form()
    typed = form.get("since")
    typed = typed if isinstance(typed, str) else ""
    try:
        since = since_of(typed, datetime.now(VIETNAM).date())
    except ValueError as exc:
        return _page(request, 422, typed, ApiProblem(422, t(str(exc)), "bad_date"))
    try:
        await apis.post(
            "notify",
            "/v1/dvcqg/resync",
            token=officer.token,
            lang=lang,
            json={"since": since.isoformat()},
        )
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return _page(request, problem.status, typed, problem)
    return RedirectResponse(f"/admin/national?queued={since.date().isoformat()}", 303)
