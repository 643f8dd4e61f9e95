"""Prints every setting of Motcua as a Markdown table: `python -m tools.settings_doc`."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from services.audit.settings import AuditSettings
from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.review.settings import ReviewSettings
from shared.settings import SharedSettings, settings_table
from tools.devstack import ROOT

SETTINGS: list[tuple[str, type[BaseSettings]]] = [
    ("all services", SharedSettings),
    ("intake", IntakeSettings),
    ("review", ReviewSettings),
    ("notify", NotifySettings),
    ("audit", AuditSettings),
]


def markdown() -> str:
    lines = ["| Variable | Used by | Default | Meaning |", "|---|---|---|---|"]
    for used_by, cls in SETTINGS:
        for var, default, description in settings_table(cls):
            shown = default.replace(str(ROOT), ".")
            lines.append(f"| `{var}` | {used_by} | `{shown}` | {description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
