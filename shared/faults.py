"""Named fault points: a fault test sets MOTCUA_FAULT_POINTS so a process halts at one."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class FaultPoints:
    """Halts forever at the points listed in settings, so a test can kill the process there."""

    def __init__(self, spec: str) -> None:
        self.enabled = frozenset(p.strip() for p in spec.split(",") if p.strip())

    async def reach(self, name: str) -> None:
        if name in self.enabled:
            log.warning("fault point reached, halting", extra={"fault_point": name})
            await asyncio.Event().wait()
