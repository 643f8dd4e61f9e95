"""The officer roster: units, the wards each receives, officers and their roles."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared import roles
from shared.contracts import DossierSubmittedData
from shared.roles import StaffRole

Role = StaffRole


class Unit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    wards: list[str] = Field(default_factory=list)


class Officer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    role: Role
    unit: str
    active: bool = True


class Roster(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default_unit: str
    units: list[Unit]
    officers: list[Officer]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        unit_ids = {u.id for u in self.units}
        if self.default_unit not in unit_ids:
            raise ValueError(f"default_unit {self.default_unit!r} is not a listed unit")
        seen: dict[str, str] = {}
        for unit in self.units:
            for ward in unit.wards:
                if ward in seen:
                    raise ValueError(f"ward {ward} is in both {seen[ward]} and {unit.id}")
                seen[ward] = unit.id
        ids: set[str] = set()
        for officer in self.officers:
            if officer.unit not in unit_ids:
                raise ValueError(f"officer {officer.id} is in unknown unit {officer.unit!r}")
            if officer.id in ids:
                raise ValueError(f"officer id {officer.id} is listed twice")
            ids.add(officer.id)
        return self

    def unit_for_ward(self, ward_code: str) -> str:
        """The unit that receives dossiers of `ward_code` (the default unit if none does)."""
        for unit in self.units:
            if ward_code in unit.wards:
                return unit.id
        return self.default_unit

    def receiving_unit(self, submitted: DossierSubmittedData) -> str:
        """The unit that receives a dossier: its ward's police, or the province office."""
        if submitted.receiving_unit == "province":
            return self.default_unit
        ward = submitted.ward_code or (submitted.residence.ward_code if submitted.residence else "")
        return self.unit_for_ward(ward)

    def supervisor_for(self, unit_id: str) -> str | None:
        """Who an overdue task escalates to: the unit's supervisor, else the province's."""
        for unit in (unit_id, self.default_unit):
            found = next(
                (
                    o
                    for o in self.officers
                    if o.unit == unit and o.role in roles.ESCALATED_TO and o.active
                ),
                None,
            )
            if found:
                return found.id
        return None

    def officer(self, officer_id: str) -> Officer | None:
        return next((o for o in self.officers if o.id == officer_id), None)

    def assignable(self, unit_id: str) -> list[Officer]:
        """Officers of `unit_id` who take dossiers (role officer), else its chiefs."""
        members = [o for o in self.officers if o.unit == unit_id and o.active]
        return [o for o in members if o.role in roles.ASSIGNED_FIRST] or [
            o for o in members if o.role in roles.ASSIGNED_INSTEAD
        ]


def load_roster(path: Path) -> Roster:
    """Read and validate a roster file; errors name the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Roster.model_validate(raw)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"invalid roster {path}: {exc}") from exc
