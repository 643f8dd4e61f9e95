"""What the applicant may change: withdraw the dossier (rút hồ sơ, after a confirmation), and
answer a supplement request (bổ sung hồ sơ) with new documents. Both prove the dossier is
theirs as the status page does (secret or phone), carried in hidden fields."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.portal import forms
from services.portal.citizen import common, documents
from services.portal.citizen.status import Proof, look_up, path_of, proof_from
from services.portal.clients import ApiProblem
from services.portal.csrf import Checked
from services.portal.desk import Document
from services.portal.desk import _errors as desk_errors

router = APIRouter(include_in_schema=False)

_CHANGED_ALREADY = {"not_withdrawable", "no_supplement_requested"}
"""intake's 409s that mean the step was already taken (a double tap): show where it stands."""


def _back(code: str, proof: Proof, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path_of(code)}{proof.query()}&done={done}", status_code=303)


@router.get("/status/{code}/withdraw")
async def withdraw_page(request: Request, code: str) -> Response:
    """Asks the citizen to confirm the withdrawal (and why, if they wish)."""
    proof = proof_from(request.query_params)
    found = await look_up(request, code, proof)
    return common.pages_of(request).render(
        request, "citizen/withdraw.html", dossier=found, proof=proof, path=path_of(code)
    )


@router.post("/status/{code}/withdraw")
async def withdraw(request: Request, code: str, _: Checked) -> Response:
    posted = await request.form()
    proof = proof_from(posted)
    reason = str(posted.get("reason") or "").strip()[:1000] or None
    try:
        await common.intake(
            request,
            "POST",
            f"/v1/dossiers/{quote(code, safe='')}/withdraw",
            json={"reason": reason},
            **proof.sent(),
        )
    except ApiProblem as problem:
        if problem.code not in _CHANGED_ALREADY:
            raise
        return _back(code, proof, "refused")
    return _back(code, proof, "withdrawn")


@router.get("/status/{code}/supplement")
async def supplement_page(request: Request, code: str) -> Response:
    """The documents the citizen may add, with a note for the officer."""
    proof = proof_from(request.query_params)
    found = await look_up(request, code, proof)
    procedure = await common.procedure_of(request, str(found["procedure_code"]))
    wanted = documents.specs(procedure, common.language(request), None, optional=True)
    return _page(request, code, found, proof, wanted, forms.Errors(), str(uuid.uuid4()), "", 200)


@router.post("/status/{code}/supplement")
async def supplement(request: Request, code: str, _: Checked) -> Response:
    posted = await request.form()
    proof = proof_from(posted)
    key = str(posted.get("idempotency_key") or "")[:200] or str(uuid.uuid4())
    note = str(posted.get("note") or "").strip()[:1000]
    found = await look_up(request, code, proof)
    procedure = await common.procedure_of(request, str(found["procedure_code"]))
    wanted = documents.specs(procedure, common.language(request), posted, optional=True)
    async with documents.memory(request).lock(key):
        refs, refused = await documents.attach(request, wanted, posted, key)
        if not refs and not refused:
            t = common.texts(request)
            refused = forms.Errors(unplaced=[("", t("citizen.supplement_nothing"))])
        if refused:
            return _page(request, code, found, proof, wanted, refused, key, note, 422)
        try:
            await common.intake(
                request,
                "POST",
                f"/v1/dossiers/{quote(code, safe='')}/supplements",
                json={"attachments": refs, "note": note or None},
                **proof.sent(),
            )
        except ApiProblem as problem:
            if problem.code in _CHANGED_ALREADY:
                return _back(code, proof, "refused")
            if problem.status != 422:
                raise
            shown = {d.path: d.field for d in wanted}
            placed = forms.place_errors(desk_errors(problem, refs), shown)
            return _page(request, code, found, proof, wanted, placed, key, note, 422)
    return _back(code, proof, "supplemented")


def _page(
    request: Request,
    code: str,
    found: dict[str, Any],
    proof: Proof,
    wanted: list[Document],
    errors: forms.Errors,
    key: str,
    note: str,
    status: int,
) -> Response:
    return common.pages_of(request).render(
        request,
        "citizen/supplement.html",
        status=status,
        dossier=found,
        proof=proof,
        path=path_of(code),
        documents=wanted,
        errors=errors,
        key=key,
        note=note,
    )
