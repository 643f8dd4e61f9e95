"""What this officer may do on a dossier now, as pure functions: exactly the workflow actions
review allows (with the reason rule), and claim, release, reassign and the apology by the rules
of shared/roles.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from services.portal.session import SignedInOfficer
from services.portal.worktime import Translate, named
from shared import roles

ReasonRule = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class Button:
    """A workflow action the officer may take now, and whether it asks for a reason."""

    action: str
    label: str
    reason: ReasonRule
    asks_documents: bool = False
    """It asks the citizen for documents: the form lists the procedure's to tick."""


def buttons(task: dict[str, Any], t: Translate) -> list[Button]:
    """Exactly the API's allowed actions: from `actions` (with the reason rule), or from an
    older review's `allowed_actions` (a reason field offered, never demanded)."""
    detailed = task.get("actions")
    if isinstance(detailed, list) and detailed:
        return [
            Button(
                a["action"],
                named("action", a["action"], t, a.get("name_vi")),
                _rule(a),
                bool(a.get("asks_documents")),
            )
            for a in detailed
            if isinstance(a, dict) and a.get("action")
        ]
    return [Button(a, named("action", a, t), "optional") for a in task.get("allowed_actions") or []]


def _rule(action: dict[str, Any]) -> ReasonRule:
    rule = action.get("reason")
    if rule in ("required", "optional", "none"):
        return rule  # type: ignore[no-any-return]
    return "required" if action.get("requires_reason") else "optional"


APOLOGY_WINDOW = timedelta(days=3)
"""Review takes an apology for a dossier late, or late within a working day; the page offers
the form from a little earlier (a weekend may sit between), and review's refusal says why."""


def late_soon(task: dict[str, Any], now: datetime) -> bool:
    """Whether the step is overdue or due soon, or the promised date is near (or none)."""
    if task.get("timeliness") in ("overdue", "due_soon") or (task.get("waiting") or {}).get(
        "overdue"
    ):
        return True
    promised = task.get("promised_at")
    if not promised:  # no date was promised: any day is a new one (review agrees)
        return True
    return datetime.fromisoformat(str(promised)) - now <= APOLOGY_WINDOW


def holding(task: dict[str, Any], officer: SignedInOfficer, now: datetime) -> list[str]:
    """Which of claim, release, reassign and the apology to offer this officer: the rules of
    shared/roles.py, so no button is shown that review would refuse for the role; review still
    decides (and its refusal shows beside the form)."""
    if not task.get("open", True) or task.get("waiting") is None:
        return []
    of_unit = task.get("unit_id") == officer.unit
    escalated = task.get("escalated_to") == officer.id
    holder = task.get("officer_id")
    offered = []
    if holder is None and of_unit and officer.role in roles.HOLDERS:
        offered.append("claim")
    if holder == officer.id:
        offered.append("release")
    if officer.role in roles.REASSIGNERS and (of_unit or escalated):
        offered.append("reassign")
    if late_soon(task, now) and officer.role in roles.APOLOGISERS and (of_unit or escalated):
        offered.append("apology")
    return offered


def form_ids(buttons: list[Button], offered: list[str]) -> set[str]:
    """The ids of the forms the page shows (a refusal is shown beside one of them)."""
    return {f"action-{b.action}" for b in buttons} | set(offered)
