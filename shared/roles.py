"""The officers' roles, their Vietnamese names, and what each may do beyond a workflow's steps.

One vocabulary for every service: tokens carry one of `ROLES` (checked in shared/auth.py),
review's directory stores them, its workflows name them (plus the actors `CITIZEN` and
`SYSTEM`, who are not officers). What a role may do inside a procedure is the workflow's
business; the groups below are the rules that hold across procedures.
"""

from __future__ import annotations

from typing import Literal, get_args

StaffRole = Literal["officer", "chief", "supervisor", "admin"]
"""The roles of review's directory of units and officers."""

Role = Literal[StaffRole, "inspector"]
"""Every role a token may carry."""

OFFICER: StaffRole = "officer"  # receives and handles dossiers
CHIEF: StaffRole = "chief"  # leads a unit, signs its decisions
SUPERVISOR: StaffRole = "supervisor"  # watches deadlines, takes what is escalated, reassigns
ADMIN: StaffRole = "admin"  # manages units and officers
INSPECTOR: Role = "inspector"  # reads the audit trail (thanh tra); holds no tasks, no unit work

STAFF_ROLES: frozenset[str] = frozenset(get_args(StaffRole))
ROLES: frozenset[str] = STAFF_ROLES | {INSPECTOR}

CITIZEN = "citizen"  # the applicant's own moves (withdraw, supplement)
SYSTEM = "system"  # timers and other automatic steps
ACTORS: frozenset[str] = STAFF_ROLES | {CITIZEN, SYSTEM}  # who a workflow action may name

NAMES_VI: dict[str, str] = {
    OFFICER: "Cán bộ tiếp nhận, xử lý hồ sơ",
    CHIEF: "Lãnh đạo đơn vị",
    SUPERVISOR: "Cán bộ giám sát",
    ADMIN: "Quản trị viên",
    INSPECTOR: "Thanh tra",
    CITIZEN: "Công dân",
    SYSTEM: "Hệ thống",
}

UNIT_WIDE: frozenset[str] = frozenset({CHIEF, SUPERVISOR})
"""See and act on every task of their unit, not only those they hold."""

HOLDERS: frozenset[str] = frozenset({OFFICER, CHIEF})
"""Hold tasks: may be assigned one, claim one released to the unit, be handed one."""

ASSIGNED_FIRST: frozenset[str] = frozenset({OFFICER})
"""Get new dossiers; when a unit has none active, `ASSIGNED_INSTEAD` do."""

ASSIGNED_INSTEAD: frozenset[str] = frozenset({CHIEF, SUPERVISOR})

REASSIGNERS: frozenset[str] = frozenset({SUPERVISOR})
"""Hand a task of their unit (or escalated to them) to another holder."""

APOLOGISERS: frozenset[str] = frozenset({CHIEF, SUPERVISOR})
"""Issue the apology for a late dossier with a new promised date."""

ESCALATED_TO: frozenset[str] = frozenset({SUPERVISOR})
"""Receive overdue tasks."""

DIRECTORY_ADMINS: frozenset[str] = frozenset({ADMIN})
"""Manage units (province office) and officers (their unit, or all from the province office)."""

OPERATORS: frozenset[str] = frozenset({ADMIN, SUPERVISOR})
"""See operational state (e.g. notify's parked deliveries) and replay it."""

DESK: frozenset[str] = frozenset({OFFICER, CHIEF})
"""Submit a dossier at the counter on a citizen's behalf (tiếp nhận trực tiếp)."""


def name_vi(role: str) -> str:
    """The Vietnamese name of a role or actor (the code itself if unknown)."""
    return NAMES_VI.get(role, role)
