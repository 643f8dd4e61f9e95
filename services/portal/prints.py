"""Printing the one-stop slips (BM-VP01) from a dossier: the receipt and appointment slip after a
desk submission (by dossier code), the control slip and the apology slip (by task id).

The data comes from review's task (the dossier as submitted, its history, the promised date in
force) and intake's procedure (the documents' names, the legal deadline); the PDF from
`services.portal.printing`. Each print is recorded in the dossier's history by review
(`POST /v1/tasks/{id}/prints`), which also decides who may print: a refusal (403 for another
unit) is the error page, and no PDF.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from vietnam_provinces import Province, Ward, WardCode

from services.portal.clients import ApiProblem, Apis
from services.portal.csrf import Checked
from services.portal.desk import procedure_of
from services.portal.printing import (
    ApologySlip,
    Channel,
    ControlSlip,
    Issuer,
    ReceiptSlip,
    SlipDocument,
    SlipStep,
    apology_pdf,
    control_pdf,
    receipt_pdf,
)
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer

log = logging.getLogger(__name__)
router = APIRouter(prefix="/prints", include_in_schema=False)

Form = Literal["receipt", "control", "apology"]
FILE_NAMES: dict[str, str] = {
    "receipt": "giay-tiep-nhan",
    "control": "phieu-kiem-soat",
    "apology": "phieu-xin-loi",
}
FIND_TRIES = 20
FIND_PAUSE = 0.25
"""Review files a desk dossier's task a moment after intake answers: look for it this long."""
QUIET = {"print"}
"""History steps that hand nothing over: not rows of the control slip."""
_SECRET = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


@router.post("/receipt/{code}")
async def receipt(request: Request, code: str, officer: Officer, _: Checked) -> Response:
    """Giấy tiếp nhận hồ sơ và hẹn trả kết quả of a dossier (by its code)."""
    posted = await request.form()
    secret = str(posted.get("secret") or "")
    task = await _task_of(request, officer, code)
    procedure = await procedure_of(request, task["procedure_code"], officer)
    status_url = f"{_public_url(request)}/status/{code}"
    if _SECRET.match(secret):  # printed right after filing: the QR opens the dossier directly
        status_url += f"?secret={secret}"
    names = await _directory(request, officer)
    return await _printed(
        request,
        officer,
        task,
        "receipt",
        lambda: receipt_pdf(receipt_slip(task, procedure, names, status_url)),
    )


@router.post("/control/{task_id}")
async def control(request: Request, task_id: str, officer: Officer, _: Checked) -> Response:
    """Phiếu kiểm soát quá trình giải quyết hồ sơ, from the task's history."""
    task = await _task(request, officer, task_id)
    names = await _directory(request, officer)
    return await _printed(
        request,
        officer,
        task,
        "control",
        lambda: control_pdf(control_slip(task, names, datetime.now(UTC))),
    )


@router.post("/apology/{task_id}")
async def apology(request: Request, task_id: str, officer: Officer, _: Checked) -> Response:
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả, from the task's last apology."""
    task = await _task(request, officer, task_id)
    if last_apology(task) is None:
        pages: Pages = request.app.state.pages
        t = pages.catalogue.translator(pages.language(request))
        raise ApiProblem(409, t("prints.no_apology"), "no_apology")
    names = await _directory(request, officer)
    return await _printed(
        request, officer, task, "apology", lambda: apology_pdf(apology_slip(task, names))
    )


async def _printed(
    request: Request,
    officer: SignedInOfficer,
    task: dict[str, Any],
    form: Form,
    render: Callable[[], bytes],
) -> Response:
    """Render the PDF, record the print (the API may refuse: no PDF then), answer it inline."""
    try:
        pdf = await run_in_threadpool(render)
    except ValidationError as exc:  # the task lacks what the slip must print (a date, a name)
        log.warning("slip %s of task %s cannot be printed: %s", form, task["id"], exc)
        pages: Pages = request.app.state.pages
        t = pages.catalogue.translator(pages.language(request))
        raise ApiProblem(409, t("prints.incomplete"), "slip_incomplete") from exc
    await _record(request, officer, task["id"], form)
    name = f"{FILE_NAMES[form]}-{task['dossier_code']}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


async def _record(request: Request, officer: SignedInOfficer, task_id: str, form: Form) -> None:
    apis: Apis = request.app.state.apis
    pages: Pages = request.app.state.pages
    await apis.post(
        "review",
        f"/v1/tasks/{task_id}/prints",
        token=officer.token,
        lang=pages.language(request),
        json={"form": form},
    )


async def _task(request: Request, officer: SignedInOfficer, task_id: str) -> dict[str, Any]:
    apis: Apis = request.app.state.apis
    pages: Pages = request.app.state.pages
    task: dict[str, Any] = await apis.get(
        "review", f"/v1/tasks/{task_id}", token=officer.token, lang=pages.language(request)
    )
    return task


async def _task_of(request: Request, officer: SignedInOfficer, code: str) -> dict[str, Any]:
    """The task of dossier `code` (review's search by code), once review has made it."""
    apis: Apis = request.app.state.apis
    pages: Pages = request.app.state.pages
    lang = pages.language(request)
    for _ in range(FIND_TRIES):
        found = await apis.get(
            "review", "/v1/tasks", token=officer.token, lang=lang, params={"q": code}
        )
        for task in found:
            if task.get("dossier_code") == code:
                return dict(task)
        await asyncio.sleep(FIND_PAUSE)
    t = pages.catalogue.translator(lang)
    raise ApiProblem(404, t("prints.not_ready", code=code), "task_not_ready")


def _public_url(request: Request) -> str:
    return str(request.app.state.settings.public_url).rstrip("/")


async def _directory(request: Request, officer: SignedInOfficer) -> Directory:
    """Names from review (`GET /v1/me`: the officer's unit and its officers), else from the
    roster file (another unit's, for a supervisor), else the ids."""
    apis: Apis = request.app.state.apis
    pages: Pages = request.app.state.pages
    units, officers = roster_names(Path(request.app.state.settings.roster_file))
    units, officers = dict(units), dict(officers)
    me = await apis.get("review", "/v1/me", token=officer.token)
    if me.get("unit"):
        units[me["unit"]["id"]] = me["unit"]["name"]
    for colleague in [me["officer"], *me.get("officers", [])]:
        officers[colleague["id"]] = colleague["name"]
    return Directory(units, officers, pages.catalogue.translator("vi"))


class Directory:
    """Names for the slips: units and officers (the roster file; ids where it has none) and
    the workflow's actions (in Vietnamese, as slips are)."""

    def __init__(
        self, units: dict[str, str], officers: dict[str, str], actions: Callable[..., str]
    ) -> None:
        self.units = units
        self.officers = officers
        self.actions = actions

    def action(self, name: str) -> str:
        try:
            return self.actions(f"prints.action.{name}")
        except KeyError:
            return name

    def unit(self, unit_id: str) -> str:
        return self.units.get(unit_id, unit_id)

    def officer(self, officer_id: str | None) -> str:
        return self.officers.get(officer_id or "", officer_id or "—")


@functools.cache
def roster_names(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Units' and officers' names by id, from the roster file (read once)."""
    try:
        roster = yaml.safe_load(path.read_text("utf-8")) or {}
    except OSError:
        log.warning("no roster file %s: slips name units and officers by id", path)
        roster = {}
    units = {str(u["id"]): str(u["name"]) for u in roster.get("units", [])}
    officers = {str(o["id"]): str(o["name"]) for o in roster.get("officers", [])}
    return units, officers


def issuer(unit_name: str, ward_code: str | None) -> dict[str, Any]:
    """The slip's header: the unit, the province's police above it, the province as place."""
    province = _province(ward_code)
    short = province.removeprefix("Thành phố ").removeprefix("Tỉnh ") if province else ""
    parent = f"Công an {province[0].lower()}{province[1:]}" if province else None
    return {"name": unit_name, "parent": parent, "place": short or "Việt Nam"}


@functools.cache
def _province(ward_code: str | None) -> str:
    if not ward_code or not ward_code.isdigit():
        return ""
    try:
        ward = Ward.from_code(WardCode(int(ward_code)))
    except (ValueError, KeyError):
        return ""
    return next((p.name for p in Province.iter_all() if p.code == ward.province_code), "")


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def receipt_slip(
    task: dict[str, Any], procedure: dict[str, Any], names: Directory, status_url: str
) -> ReceiptSlip:
    """The receipt's data from review's task (its dossier as submitted) and the procedure."""
    dossier = task.get("dossier", {})
    applicant = dossier.get("applicant", {})
    kinds = {d["type"]: d["name_vi"] for d in procedure.get("documents", [])}
    documents = [
        SlipDocument(name=kinds.get(d.get("document_type"), d.get("document_type")))
        for d in dossier.get("documents", [])
    ]
    received = _when(dossier.get("received_at")) or _when(dossier.get("submitted_at"))
    # No date: the slip is refused (409 slip_incomplete) rather than promising one of its own.
    promised = _when(task.get("promised_at")) or _when(dossier.get("promised_at"))
    days = procedure.get("deadline", {}).get("working_days")
    residence = dossier.get("residence") or {}
    return ReceiptSlip(
        issuer=Issuer(**issuer(names.unit(task["unit_id"]), dossier.get("ward_code"))),
        code=task["dossier_code"],
        applicant_name=applicant.get("full_name") or "—",
        applicant_address=residence.get("address") or None,
        applicant_phone=applicant.get("phone") or None,
        applicant_email=applicant.get("email") or None,
        procedure_name=task.get("procedure_name") or procedure.get("name_vi"),
        documents=tuple(documents),
        processing_days=int(days) if isinstance(days, int | float) else None,
        received_at=received,
        promised_at=promised,
        fee=dossier.get("fee"),
        officer_name=names.officer(dossier.get("submitted_by") or task.get("officer_id")),
        channel=Channel(int(dossier.get("channel", 1))),
        status_url=status_url,
    )


def control_slip(task: dict[str, Any], names: Directory, now: datetime) -> ControlSlip:
    """The control slip: each step of the history that handed the dossier on."""
    dossier = task.get("dossier", {})
    unit = names.unit(task["unit_id"])
    steps, holder = [], dossier.get("submitted_by")
    for step in task.get("history", []):
        at = _when(step.get("decided_at"))
        if step.get("action") in QUIET or at is None:
            continue
        steps.append(
            SlipStep(
                handed_by=names.officer(step.get("decided_by") or holder),
                handed_by_unit=unit,
                received_by=names.officer(step.get("officer_id") or step.get("decided_by")),
                received_by_unit=unit,
                at=at,
                due_at=_when(step.get("due_at")),
                result=step.get("name_vi") or names.action(step.get("action") or "") or None,
                note=step.get("reason") or None,
            )
        )
        holder = step.get("officer_id") or holder
    received = _when(dossier.get("received_at")) or _when(task.get("created_at")) or now
    return ControlSlip(
        issuer=Issuer(**issuer(unit, dossier.get("ward_code"))),
        code=task["dossier_code"],
        applicant_name=dossier.get("applicant", {}).get("full_name") or "—",
        procedure_name=task.get("procedure_name") or task["procedure_code"],
        handling_unit=unit,
        received_at=received,
        promised_at=_when(task.get("promised_at")) or _when(dossier.get("promised_at")),
        steps=tuple(steps),
        blank_rows=max(0, 4 - len(steps)),
        printed_at=now,
    )


def last_apology(task: dict[str, Any]) -> int | None:
    """Where the task's last apology is in its history (None: it has none)."""
    history = task.get("history", [])
    return next(
        (i for i in range(len(history) - 1, -1, -1) if history[i].get("action") == "apologise"),
        None,
    )


def apology_slip(task: dict[str, Any], names: Directory) -> ApologySlip:
    """The apology slip from the task's last apology (ValueError if it has none)."""
    history = task.get("history", [])
    last = last_apology(task)
    if last is None:
        raise ValueError(f"task {task.get('id')} has no apology")
    step = history[last]
    dossier = task.get("dossier", {})
    before = [_when(s.get("promised_at")) for s in history[:last]]
    original = next((b for b in reversed(before) if b), None) or _when(dossier.get("promised_at"))
    new = _when(step.get("promised_at")) or _when(task.get("promised_at"))
    issued = _when(step.get("decided_at"))
    return ApologySlip(
        issuer=Issuer(**issuer(names.unit(task["unit_id"]), dossier.get("ward_code"))),
        code=task["dossier_code"],
        applicant_name=dossier.get("applicant", {}).get("full_name") or "—",
        procedure_name=task.get("procedure_name") or task["procedure_code"],
        received_at=_when(dossier.get("received_at")) or _when(task.get("created_at")),
        original_promised_at=original,
        new_promised_at=new,
        reason=step.get("reason") or "—",
        signer_name=names.officer(step.get("decided_by")),
        issued_at=issued,
    )
