"""Vietnamese time on paper: "HH giờ mm phút, ngày dd/mm/yyyy" in Asia/Ho_Chi_Minh time."""

from __future__ import annotations

from datetime import datetime

from shared.calendar import VIETNAM


def in_vietnam(moment: datetime) -> datetime:
    """The same instant on Vietnam's clock; a naive datetime is refused, never guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone (UTC expected)")
    return moment.astimezone(VIETNAM)


def format_vn_time(moment: datetime) -> str:
    """'08 giờ 05 phút, ngày 01/12/2026' for an aware datetime, on Vietnam's clock."""
    local = in_vietnam(moment)
    return f"{local:%H} giờ {local:%M} phút, ngày {local:%d/%m/%Y}"


def format_vn_date(moment: datetime) -> str:
    """'ngày 01 tháng 12 năm 2026', the date line under the national motto."""
    local = in_vietnam(moment)
    return f"ngày {local:%d} tháng {local:%m} năm {local:%Y}"
