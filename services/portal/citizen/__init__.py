"""The citizens' pages (issue 12): the catalogue, filing a dossier online, its receipt, its
status, withdrawing it and answering a supplement request, and the offline outbox's service
worker. No sign-in: intake's public API is called anonymously on the citizen's behalf."""

from __future__ import annotations

from fastapi import APIRouter

from services.portal.citizen import apply, catalogue, changes, receipt, status, worker

router = APIRouter(include_in_schema=False)
for part in (catalogue, apply, receipt, status, changes, worker):
    router.include_router(part.router)
