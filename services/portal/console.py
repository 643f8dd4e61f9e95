"""The officer console's work pages as one router: the queues, the dossier page, its forms and
its documents."""

from __future__ import annotations

from fastapi import APIRouter

from services.portal import documents, dossier, dossier_actions, queues

router = APIRouter(include_in_schema=False)
for part in (queues.router, dossier.router, dossier_actions.router, documents.router):
    router.include_router(part)
