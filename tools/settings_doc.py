"""Prints every setting of Motcua as a Markdown table: `python -m tools.settings_doc`."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from services.audit.settings import AuditSettings
from services.intake.settings import IntakeSettings
from services.notify.national.settings import DvcqgSettings
from services.notify.settings import NotifySettings
from services.portal.settings import PortalSettings
from services.portal.upload_settings import UploadSettings
from services.review.settings import ReviewSettings
from shared.settings import SharedSettings, settings_table
from tools.devstack import ROOT

SETTINGS: list[tuple[str, type[BaseSettings]]] = [
    ("all services", SharedSettings),
    ("intake", IntakeSettings),
    ("review", ReviewSettings),
    ("notify", NotifySettings),
    ("notify (national portal)", DvcqgSettings),
    ("audit", AuditSettings),
    ("portal", PortalSettings),
    ("portal uploads", UploadSettings),
]


def markdown() -> str:
    lines = ["| Variable | Used by | Default | Meaning |", "|---|---|---|---|"]
    for used_by, cls in SETTINGS:
        for var, default, description in settings_table(cls):
            shown = default.replace(str(ROOT), ".")
            lines.append(f"| `{var}` | {used_by} | `{shown}` | {description} |")
    return "\n".join(lines)


START, END = "<!-- settings:start", "<!-- settings:end -->"


def write(readme: Path) -> None:
    """Replace the table between the settings markers of `readme`."""
    text = readme.read_text("utf-8")
    head, rest = text.split(START, 1)
    marker_line, _, tail = rest.partition("\n")
    _, _, after = tail.partition(END)
    readme.write_text(f"{head}{START}{marker_line}\n{markdown()}\n{END}{after}", "utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write(Path(sys.argv[2]))
    else:
        print(markdown())
