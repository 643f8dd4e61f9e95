"""Units and officers, for admins, over review's admin API (`/v1/admin/...`): lists, a form to
create and one to edit each. Review decides who may do what: others get its 403 as a page, and
a refused change shows its Vietnamese problem beside the form, with nothing changed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.portal.clients import ApiProblem, Apis
from services.portal.csrf import Checked
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer
from services.portal.supervision import Numbers
from shared import roles

router = APIRouter(include_in_schema=False)
STAFF_ROLES = (roles.OFFICER, roles.CHIEF, roles.SUPERVISOR, roles.ADMIN)
OFFICER_FIELDS = ("name", "role", "unit", "active")


def wards(text: str) -> list[str]:
    """Ward codes typed as a list (commas, spaces or lines between), in order, once each."""
    seen: dict[str, None] = {}
    for code in re.split(r"[\s,;]+", text):
        if code:
            seen.setdefault(code, None)
    return list(seen)


@dataclass(frozen=True)
class Change:
    at: datetime
    by: str
    fields: list[tuple[str, str, str]]
    """(field, before, after); before is empty for a creation."""


def changes(history: list[dict[str, Any]]) -> list[Change]:
    """What each recorded change of an officer changed, newest first."""
    out = []
    for entry in history:
        before = entry.get("before") or {}
        after = entry.get("after") or {}
        fields = [
            (name, _shown(before.get(name)), _shown(after.get(name)))
            for name in OFFICER_FIELDS
            if before.get(name) != after.get(name)
        ]
        out.append(Change(datetime.fromisoformat(str(entry["at"])), str(entry["by"]), fields))
    return sorted(out, key=lambda c: c.at, reverse=True)


def _shown(value: Any) -> str:
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _path(key: str) -> str:
    return quote(key, safe="")


class Admin:
    """One page's calls to review's admin API, with the officer's token and language."""

    def __init__(self, request: Request, officer: SignedInOfficer) -> None:
        self.request = request
        self.officer = officer
        self.pages: Pages = request.app.state.pages
        self.apis: Apis = request.app.state.apis
        self.lang = self.pages.language(request)
        self.t = self.pages.catalogue.translator(self.lang)

    async def get(self, path: str) -> Any:
        return await self.apis.get(
            "review", "/v1/admin" + path, token=self.officer.token, lang=self.lang
        )

    async def put(self, path: str, body: dict[str, Any]) -> Any:
        return (
            await self.apis.call(
                "PUT",
                "review",
                "/v1/admin" + path,
                token=self.officer.token,
                lang=self.lang,
                json=body,
            )
        ).body

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        return self.pages.render(
            self.request,
            template,
            status=status,
            numbers=Numbers(self.lang),
            roles=STAFF_ROLES,
            saved=self.request.query_params.get("saved", ""),
            **context,
        )

    async def save(
        self, kind: str, key: str, existing: str | None, body: dict[str, Any]
    ) -> ApiProblem | None:
        """PUT `body` as the unit or officer `key`, a new one unless `existing` names it: the
        refusal to show beside the form, or None once saved. A refusal that is a page (not
        signed in, or an item not listed) is raised; the API's 403 to an admin (a ward's admin
        changing another unit) is shown beside the form."""
        listed = await self.get(f"/{kind}s")
        try:
            if not key:
                raise ApiProblem(422, self.t("admin.id_needed"), "id_needed")
            if existing is None and any(item["id"] == key for item in listed):
                raise ApiProblem(409, self.t(f"admin.{kind}_exists", id=key), "exists")
            if existing is not None:
                _find(listed, existing, self)
            await self.put(f"/{kind}s/{_path(key)}", body)
        except ApiProblem as problem:
            if problem.status in (401, 404):
                raise
            return problem
        return None


def _form_text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# --- units ---------------------------------------------------------------------------------


@router.get("/admin/units")
async def list_units(request: Request, officer: Officer) -> Response:
    return await _units(Admin(request, officer), {"id": "", "name": "", "wards": []}, None)


@router.get("/admin/units/{unit_id}")
async def edit_unit(request: Request, officer: Officer, unit_id: str) -> Response:
    admin = Admin(request, officer)
    unit = _find(await admin.get("/units"), unit_id, admin)
    return admin.render("admin/unit.html", unit=unit, problem=None)


@router.post("/admin/units")
async def create_unit(request: Request, officer: Officer, _: Checked) -> Response:
    return await _save_unit(request, officer, None)


@router.post("/admin/units/{unit_id}")
async def save_unit(request: Request, officer: Officer, _: Checked, unit_id: str) -> Response:
    return await _save_unit(request, officer, unit_id)


async def _units(admin: Admin, unit: dict[str, Any], problem: ApiProblem | None) -> Response:
    status = problem.status if problem else 200
    units = await admin.get("/units")
    return admin.render("admin/units.html", status, units=units, unit=unit, problem=problem)


async def _save_unit(request: Request, officer: SignedInOfficer, unit_id: str | None) -> Response:
    admin = Admin(request, officer)
    form = await request.form()
    key = unit_id or _form_text(form, "id")
    body = {"name": _form_text(form, "name"), "wards": wards(_form_text(form, "wards"))}
    problem = await admin.save("unit", key, unit_id, body)
    if problem is None:
        return RedirectResponse(f"/admin/units?saved={_path(key)}", status_code=303)
    if unit_id is None:
        return await _units(admin, {"id": key, **body}, problem)
    shown = {"id": key, **body}
    return admin.render("admin/unit.html", problem.status, unit=shown, problem=problem)


# --- officers -------------------------------------------------------------------------------


@router.get("/admin/officers")
async def list_officers(request: Request, officer: Officer) -> Response:
    blank = {"id": "", "name": "", "role": roles.OFFICER, "unit": officer.unit, "active": True}
    return await _officers(Admin(request, officer), blank, None)


@router.get("/admin/officers/{officer_id}")
async def edit_officer(request: Request, officer: Officer, officer_id: str) -> Response:
    admin = Admin(request, officer)
    person = _find(await admin.get("/officers"), officer_id, admin)
    return await _officer(admin, person, None)


@router.post("/admin/officers")
async def create_officer(request: Request, officer: Officer, _: Checked) -> Response:
    return await _save_officer(request, officer, None)


@router.post("/admin/officers/{officer_id}")
async def save_officer(request: Request, officer: Officer, _: Checked, officer_id: str) -> Response:
    return await _save_officer(request, officer, officer_id)


async def _officers(admin: Admin, person: dict[str, Any], problem: ApiProblem | None) -> Response:
    officers = await admin.get("/officers")
    units = await admin.get("/units")
    status = problem.status if problem else 200
    names = {u["id"]: u["name"] for u in units}
    context = {"officers": officers, "units": units, "unit_names": names, "person": person}
    context["problem"] = problem
    return admin.render("admin/officers.html", status, **context)


async def _officer(admin: Admin, person: dict[str, Any], problem: ApiProblem | None) -> Response:
    units = await admin.get("/units")
    history = changes(await admin.get(f"/officers/{_path(person['id'])}/changes"))
    status = problem.status if problem else 200
    return admin.render(
        "admin/officer.html", status, person=person, units=units, history=history, problem=problem
    )


async def _save_officer(
    request: Request, officer: SignedInOfficer, officer_id: str | None
) -> Response:
    admin = Admin(request, officer)
    form = await request.form()
    key = officer_id or _form_text(form, "id")
    body = {
        "name": _form_text(form, "name"),
        "role": _form_text(form, "role"),
        "unit": _form_text(form, "unit"),
        "active": form.get("active") == "on",
    }
    problem = await admin.save("officer", key, officer_id, body)
    if problem is None:
        return RedirectResponse(f"/admin/officers?saved={_path(key)}", status_code=303)
    shown = {"id": key, **body}
    if officer_id is None:
        return await _officers(admin, shown, problem)
    return await _officer(admin, shown, problem)


def _find(items: list[dict[str, Any]], key: str, admin: Admin) -> dict[str, Any]:
    """The unit or officer `key` of a list the API gave (it has no single-item GET)."""
    found = next((item for item in items if item["id"] == key), None)
    if found is None:
        raise ApiProblem(404, admin.t("admin.not_found", id=key), "not_found")
    return found
