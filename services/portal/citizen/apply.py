"""Filing online (nộp hồ sơ trực tuyến, channel 2): the procedure's form rendered from its JSON
Schema, the documents, the channels the citizen wants to be told by; posted as a plain form,
answered by a redirect to the receipt, or by the form again with intake's errors beside each
field.

One dossier per form page, whatever the network or the citizen does: the page carries an
Idempotency-Key made when it was rendered, and the body posted to intake is the same on every
retry (each file uploaded once per key and content), so intake answers a reload, a double tap,
a retry after a timeout or the offline outbox's late sending with the first receipt."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from services.portal import forms
from services.portal.citizen import common, documents, receipt
from services.portal.clients import ApiProblem, Reply
from services.portal.csrf import Checked
from services.portal.desk import Document
from services.portal.desk import _errors as desk_errors

router = APIRouter(include_in_schema=False)

CHANNELS = ("sms", "zalo", "email")
KEY_FIELD = "idempotency_key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
IN_PROGRESS_RETRIES = 5
"""How often a submission whose first sending intake is still processing is asked again."""


@router.get("/procedures/{code}/apply")
async def form_page(request: Request, code: str) -> Response:
    """The procedure's form, empty, with a new Idempotency-Key."""
    procedure = await _online(request, code)
    key = str(uuid.uuid4())
    return _form(request, procedure, {}, [], forms.Errors(), key, ["sms"], status=200)


@router.post("/procedures/{code}/apply")
async def submit(request: Request, code: str, _: Checked) -> Response:
    """Upload the documents, file the dossier; 303 to its receipt, or the form refused."""
    posted = await request.form()
    key = str(posted.get(KEY_FIELD) or "")
    if not _KEY.match(key):  # a page not made here: start again with a fresh one
        return await form_page(request, code)
    procedure = await _online(request, code)
    values = {k: v for k, v in posted.multi_items() if isinstance(v, str)}
    fields = _fields(request, procedure)
    lang = common.language(request)
    wanted = documents.specs(procedure, lang, posted)
    channels = [c for c in posted.getlist("notify_by") if c in CHANNELS]
    async with documents.memory(request).lock(key):
        refs, refused = await documents.attach(request, wanted, posted, key)
        if refused:  # a file the procedure cannot take: say so before filing anything
            return _form(request, procedure, values, wanted, refused, key, channels, status=422)
        body = {
            "procedure_code": code,
            **forms.read(fields, values),
            "applicant_kind": _kind(posted, procedure),
            "notify_by": channels,
            "attachments": refs,
        }
        try:
            reply = await _file(request, body, key)
        except ApiProblem as problem:
            if problem.code == "idempotency_key_reused":  # this page already filed a dossier
                t = common.texts(request)
                raise ApiProblem(409, t("citizen.key_reused"), problem.code) from problem
            if problem.status != 422:
                raise
            errors = desk_errors(problem, refs)  # those on attachments.<i> by document
            return _form(request, procedure, values, wanted, errors, key, channels, status=422)
    filed: dict[str, Any] = reply.body
    receipt.remember(request, str(filed["code"]), str(filed.get("access_secret") or ""))
    return RedirectResponse(f"/receipts/{filed['code']}", status_code=303)


async def _file(request: Request, body: dict[str, Any], key: str) -> Reply:
    """POST the dossier under its key; asked again while intake still processes a first
    sending of the same key (another portal replica, a sending that timed out)."""
    for attempt in range(IN_PROGRESS_RETRIES):
        try:
            return await common.intake(
                request, "POST", "/v1/dossiers", json=body, headers={"Idempotency-Key": key}
            )
        except ApiProblem as problem:
            if problem.code != "idempotency_key_in_progress" or attempt == IN_PROGRESS_RETRIES - 1:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def _online(request: Request, code: str) -> dict[str, Any]:
    procedure = await common.procedure_of(request, code)
    if not common.online(procedure):
        t = common.texts(request)
        raise ApiProblem(404, t("citizen.not_online"), "not_online")
    return procedure


def _fields(request: Request, procedure: dict[str, Any]) -> list[forms.Field]:
    catalogue = common.pages_of(request).catalogue
    texts = {lang: catalogue.translator(lang) for lang in ("vi", "en")}
    return forms.describe(procedure["form_schema"], texts)


def _kind(posted: FormData, procedure: dict[str, Any]) -> int:
    kinds = [int(k) for k in procedure.get("applicant_kinds", [1])]
    raw = str(posted.get("applicant_kind") or "")
    return int(raw) if raw.isdigit() and int(raw) in kinds else kinds[0]


def _form(
    request: Request,
    procedure: dict[str, Any],
    values: dict[str, str],
    wanted: list[Document],
    errors: forms.Errors | list[dict[str, Any]],
    key: str,
    chosen: list[str],
    *,
    status: int,
) -> Response:
    lang = common.language(request)
    wanted = wanted or documents.specs(procedure, lang, None)
    layout = forms.layout(_fields(request, procedure), values)
    shown = forms.index(layout)
    t = common.texts(request)
    extra = {
        "notify_by": forms.Field("notify_by", "notify_by", t("citizen.channels"), "Channels"),
        "applicant_kind": forms.Field("applicant_kind", "applicant_kind", "Loại", "Kind"),
    }
    shown.update({d.path: d.field for d in wanted} | extra)
    placed = errors if isinstance(errors, forms.Errors) else forms.place_errors(errors, shown)
    return common.pages_of(request).render(
        request,
        "citizen/apply.html",
        status=status,
        procedure=procedure,
        name=common.procedure_name(procedure, lang),
        layout=layout,
        values=values,
        errors=placed,
        shown=shown,
        form_hint=forms.hint,
        documents=wanted,
        channels=CHANNELS,
        chosen=chosen,
        key=key,
        key_field=KEY_FIELD,
    )
