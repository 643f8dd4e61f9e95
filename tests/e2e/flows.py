"""Steps the end-to-end tests share: submit, find the task, decide, read the timeline."""

from __future__ import annotations

import functools
import io
import subprocess
import sys
from datetime import timedelta
from typing import Any

import httpx
from PIL import Image

from shared import auth
from shared.settings import SharedSettings
from tests.e2e.harness import Services, eventually
from tests.factories import CATALOGUE, VALID_FORM
from tools.devstack import ROOT


@functools.cache
def token(officer_id: str) -> str:
    """A bearer token from the CLI that officers use: `python -m services.review token ID`
    (once per officer: tokens last hours)."""
    out = subprocess.run(
        [sys.executable, "-m", "services.review", "token", officer_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


# Each dossier's secret (mã tra cứu), as its receipt gave it.
SECRETS: dict[str, str] = {}
PDF = b"%PDF-1.4\n% a small scanned form\n%%EOF\n"


def _image(image_format: str) -> bytes:
    """A real (tiny) image: intake decodes every upload, and refuses what does not."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (40, 90, 160)).save(out, image_format)
    return out.getvalue()


SAMPLES = {"application/pdf": PDF, "image/jpeg": _image("JPEG"), "image/png": _image("PNG")}


def upload(
    intake_url: str, document_type: str, data: bytes = PDF, media_type: str = "application/pdf"
) -> dict[str, Any]:
    response = httpx.post(
        f"{intake_url}/v1/attachments",
        params={"document_type": document_type},
        content=data,
        headers={"Content-Type": media_type},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def with_documents(intake_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with an uploaded file for each document its procedure requires."""
    procedure = CATALOGUE.procedures[body["procedure_code"]]
    refs = [
        {
            "document_type": d.type,
            "id": upload(intake_url, d.type, SAMPLES[d.media_types[0]], d.media_types[0])["id"],
        }
        for d in procedure.documents
        if d.required
    ]
    return {**body, "attachments": refs}


def submit(services: Services, body: dict[str, Any] | None = None) -> str:
    url = services.url("intake")
    response = httpx.post(f"{url}/v1/dossiers", json=with_documents(url, body or VALID_FORM))
    assert response.status_code == 201, response.text
    receipt = response.json()
    SECRETS[receipt["code"]] = receipt["access_secret"]
    return str(receipt["code"])


def status(services: Services, code: str) -> dict[str, Any]:
    """The dossier as its applicant sees it (with the receipt's secret)."""
    response = httpx.get(
        f"{services.url('intake')}/v1/dossiers/{code}",
        headers={"X-Dossier-Secret": SECRETS[code]},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@functools.cache
def inspector_headers() -> dict[str, str]:
    """What audit's read API wants: any officer's token signed with the shared secret."""
    shared = SharedSettings()
    bearer = auth.issue(
        auth.OfficerClaims("inspector-01", "inspector", "inspection"),
        secret=shared.jwt_secret.get_secret_value(),
        issuer=shared.jwt_issuer,
        ttl=timedelta(hours=2),
    )
    return {"Authorization": f"Bearer {bearer}"}


async def timeline(services: Services, code: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{services.url('audit')}/v1/audit/dossiers/{code}", headers=inspector_headers()
    )
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return list(response.json()["events"])


async def wait_for_types(services: Services, code: str, *types: str) -> list[dict[str, Any]]:
    """The timeline once every one of `types` is in it."""

    async def check() -> list[dict[str, Any]] | None:
        events = await timeline(services, code)
        return events if set(types) <= {e["type"] for e in events} else None

    result: list[dict[str, Any]] = await eventually(check, timeout=45)
    return result


async def assigned_officer(services: Services, code: str) -> tuple[str, str]:
    events = await wait_for_types(services, code, "dossier.assigned")
    data = next(e["data"] for e in events if e["type"] == "dossier.assigned")
    return str(data["task_id"]), str(data["officer_id"])


def act(
    services: Services, task_id: str, bearer: str, action: str, reason: str | None = None
) -> httpx.Response:
    return httpx.post(
        f"{services.url('review')}/v1/tasks/{task_id}/actions",
        json={"action": action, "reason": reason},
        headers={"Authorization": f"Bearer {bearer}"},
    )


def decide(
    services: Services,
    task_id: str,
    bearer: str,
    decision: str = "approve",
    reason: str | None = None,
) -> httpx.Response:
    """Receive the dossier, then approve or reject it (a one-level procedure's officer); the
    first refusal is returned as it came."""
    received = act(services, task_id, bearer, "receive")
    if received.status_code != 200:
        return received
    return act(services, task_id, bearer, decision, reason)
