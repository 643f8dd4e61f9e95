"""A dossier's status for its applicant, by its code with the receipt's secret or the phone
number on the dossier: the status in words, the promised date, the steps the citizen may see,
any apology with its new date, and what the citizen may do now (withdraw, add documents)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.portal.citizen import common
from services.portal.clients import ApiProblem

router = APIRouter(include_in_schema=False)

WITHDRAWABLE = frozenset(
    {
        "submitted",
        "assigned",
        "received",
        "checked",
        "supplement_requested",
        "supplemented",
        "payment_requested",
        "paid",
    }
)
"""Intake's states a dossier may be withdrawn from (before a decision)."""
STEPS = frozenset(
    {
        "submitted",
        "assigned",
        "received",
        "refused",
        "checked",
        "supplement_requested",
        "supplemented",
        "payment_requested",
        "paid",
        "withdrawn",
        "stopped",
        "approved",
        "rejected",
        "delivered",
        "apology_issued",
    }
)
"""The steps of intake's history the page names (others are shown by their status code)."""


@dataclass(frozen=True)
class Proof:
    """What the citizen proved the dossier is theirs with: the receipt's secret or their phone."""

    secret: str = ""
    phone: str = ""

    def __bool__(self) -> bool:
        return bool(self.secret or self.phone)

    def query(self) -> str:
        """`?secret=…` (or `?phone=…`) for the links and redirects of the status pages."""
        pairs = {"secret": self.secret} if self.secret else {"phone": self.phone}
        return "?" + urlencode(pairs)

    def sent(self) -> dict[str, Any]:
        """How intake is told: the secret in its header, the phone as a parameter."""
        if self.secret:
            return {"headers": {"X-Dossier-Secret": self.secret}}
        return {"params": {"phone": self.phone}}


def proof_from(values: Any) -> Proof:
    secret = str(values.get("secret") or "").strip()[:100]
    phone = str(values.get("phone") or "").strip()[:20]
    return Proof(secret=secret) if secret else Proof(phone=phone)


def path_of(code: str) -> str:
    return f"/status/{quote(code, safe='')}"


async def look_up(request: Request, code: str, proof: Proof) -> dict[str, Any]:
    """The dossier as intake shows its applicant (ApiProblem 404 for a wrong code or proof)."""
    answer = await common.intake(
        request, "GET", f"/v1/dossiers/{quote(code, safe='')}", **proof.sent()
    )
    found: dict[str, Any] = answer.body
    return found


def history(
    found: dict[str, Any], lang: str, procedure: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The steps to show, oldest first: each step's words key and its day, with the reason
    the citizen is told, the documents asked for (by their names) and any new promised date."""
    names = {
        d.get("type"): d.get("name_vi") if lang == "vi" else d.get("name_en")
        for d in (procedure or {}).get("documents", [])
    }
    return [
        {
            "key": f"citizen.step.{h['status']}" if h.get("status") in STEPS else "",
            "status": str(h.get("status") or ""),
            "at": common.date_words(h.get("at"), lang),
            "reason": str(h.get("reason") or ""),
            "missing": [str(names.get(m) or m) for m in h.get("missing") or []],
            "promised": common.date_words(h.get("promised_at"), lang)
            if h.get("status") == "apology_issued"
            else "",
        }
        for h in found.get("history", [])
    ]


@router.get("/status")
async def find(request: Request) -> Response:
    """The look-up form (the landing page's), or the status page it names."""
    code = str(request.query_params.get("code") or "").strip().upper()[:60]
    proof = proof_from(request.query_params)
    if code and proof:
        return RedirectResponse(path_of(code) + proof.query(), status_code=303)
    pages = common.pages_of(request)
    status = 422 if request.query_params else 200
    return pages.render(
        request, "citizen/find.html", status=status, code=code, missing=status == 422
    )


@router.get("/status/{code}")
async def status_page(request: Request, code: str) -> Response:
    """Where the dossier stands, for whoever proves it is theirs."""
    pages = common.pages_of(request)
    lang = common.language(request)
    proof = proof_from(request.query_params)
    if not proof:
        return pages.render(request, "citizen/find.html", status=200, code=code, missing=False)
    try:
        found = await look_up(request, code, proof)
    except ApiProblem as problem:
        if problem.status != 404:
            raise
        return pages.render(
            request, "citizen/find.html", status=404, code=code, missing=False, problem=problem
        )
    procedure = await common.procedure_of(request, str(found["procedure_code"]))
    steps = history(found, lang, procedure)
    asked = next((s for s in reversed(steps) if s["status"] == "supplement_requested"), None)
    return pages.render(
        request,
        "citizen/status.html",
        dossier=found,
        procedure_name=common.procedure_name(procedure, lang),
        promised=common.date_words(found.get("promised_at"), lang),
        steps=steps,
        apologised=any(s["status"] == "apology_issued" for s in steps),
        withdrawable=found.get("status") in WITHDRAWABLE,
        supplement=found.get("status") == "supplement_requested",
        asked=asked,
        proof=proof,
        path=path_of(code),
        done=str(request.query_params.get("done") or ""),
    )
