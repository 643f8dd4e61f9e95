"""The queues' view logic: time left in working days and hours, the tabs' API queries and
counts, whose move it is, and the rows of a page."""

from __future__ import annotations

from typing import Any

import pytest

from services.portal.i18n import Catalogue
from services.portal.queues import (
    QueueQuery,
    names_of,
    row,
    scopes_for,
    states,
    tab_counts,
    whose_move,
)
from services.portal.session import SignedInOfficer
from services.portal.worktime import deadline, local, split_hours, time_left_text

CATALOGUE = Catalogue()
VI = CATALOGUE.translator("vi")
EN = CATALOGUE.translator("en")
OFFICER = SignedInOfficer("cb-1", "Trần Văn An", "officer", "CAP-BADINH", "tok", 4e9)
CHIEF = SignedInOfficer("cb-tp", "Phạm Quốc Cường", "chief", "CAP-BADINH", "tok", 4e9)


@pytest.mark.parametrize(
    ("hours", "vi", "en"),
    [
        (19.0, "còn 2 ngày 3 giờ", "2 d 3 h left"),
        (16.0, "còn 2 ngày", "2 d left"),
        (2.5, "còn 2 giờ 30 phút", "2 h 30 min left"),
        (0.25, "còn 15 phút", "15 min left"),
        (-8.0, "quá hạn 1 ngày", "overdue by 1 d"),
        (-9.5, "quá hạn 1 ngày 1 giờ", "overdue by 1 d 1 h"),
        (-0.5, "quá hạn 30 phút", "overdue by 30 min"),
        (0.0, "đến hạn ngay bây giờ", "due now"),
    ],
)
def test_time_left_reads_in_working_days_and_hours(hours: float, vi: str, en: str) -> None:
    assert time_left_text(hours, VI) == vi
    assert time_left_text(hours, EN) == en


def test_minutes_are_dropped_beyond_a_day_and_rounded_to_the_minute() -> None:
    assert split_hours(8 + 1 + 59.6 / 60) == (1, 2, 0)  # 1 day 1 h 59.6 min → 1 day 2 h
    assert time_left_text(8 + 0.5, VI) == "còn 1 ngày"


def test_times_read_in_vietnam_time() -> None:
    assert local("2026-12-03T07:30:00+00:00") == "14:30 03/12/2026"
    assert local(None) == ""


def task(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "t-1",
        "dossier_code": "G01.99-261201-0001",
        "procedure_code": "1.004194",
        "procedure_name": "Đăng ký tạm trú",
        "unit_id": "CAP-BADINH",
        "officer_id": "cb-1",
        "state": "receiving",
        "stage": "reception",
        "open": True,
        "due_at": "2026-12-03T03:00:00+00:00",
        "timeliness": "on_time",
        "time_left": {"working_hours": 19.0, "days": 2, "hours": 3.0},
        "waiting": {
            "whose_move": "officer",
            "since": "2026-12-01T02:00:00+00:00",
            "due_at": "2026-12-03T03:00:00+00:00",
            "clock": "running",
            "overdue": False,
        },
        "dossier": {"applicant": {"full_name": "Nguyễn Thị Lan", "phone": "+84912345678"}},
        "allowed_actions": ["receive", "refuse"],
        "history": [],
    }
    return {**base, **changes}


def test_a_row_carries_code_applicant_procedure_time_left_and_whose_move() -> None:
    shown = row(task(), VI, "cb-1")
    assert (shown.code, shown.applicant, shown.phone) == (
        "G01.99-261201-0001",
        "Nguyễn Thị Lan",
        "+84912345678",
    )
    assert shown.procedure == "Đăng ký tạm trú"
    assert shown.state == "Chờ tiếp nhận"
    assert shown.deadline.left == "còn 2 ngày 3 giờ"
    assert shown.deadline.label == "Trong hạn" and shown.deadline.css == "on_time"
    assert shown.deadline.due_at == "10:00 03/12/2026"
    assert shown.whose_move == "Tôi"


def test_an_overdue_row_says_so_in_words_not_only_in_colour() -> None:
    late = task(timeliness="overdue", time_left={"working_hours": -8.0, "days": 1, "hours": 0})
    shown = row(late, VI, "cb-1").deadline
    assert (shown.css, shown.label, shown.left) == ("overdue", "Quá hạn", "quá hạn 1 ngày")


def test_an_older_review_without_timeliness_still_marks_overdue_and_shows_no_time_left() -> None:
    older = task(timeliness=None, time_left=None, due_at=None)
    older["waiting"] = {**older["waiting"], "overdue": True}
    shown = deadline(older, VI)
    assert (shown.css, shown.label, shown.left) == ("overdue", "Quá hạn", "")


def test_a_paused_step_has_no_deadline_and_says_why() -> None:
    paused = task(due_at=None, timeliness=None, time_left=None, stage="waiting_citizen")
    paused["waiting"] = {**paused["waiting"], "due_at": None, "clock": "paused"}
    shown = deadline(paused, VI)
    assert (shown.css, shown.label, shown.left) == ("no_deadline", "Tạm dừng tính thời hạn", "")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"officer_id": "cb-1"}, "Tôi"),
        ({"officer_id": "cb-2"}, "Cán bộ cb-2"),
        ({"officer_id": None}, "Cán bộ của đơn vị (chưa có người nhận)"),
        ({"waiting": {"whose_move": "chief"}}, "Lãnh đạo đơn vị"),
        ({"waiting": {"whose_move": "citizen"}}, "Công dân"),
        ({"waiting": None}, "Không ai (đã kết thúc)"),
    ],
)
def test_whose_move(changes: dict[str, Any], expected: str) -> None:
    assert whose_move(task(**changes), VI, "cb-1") == expected


def test_each_tab_asks_review_for_its_stage_or_deadline() -> None:
    raw = {"tab": "in_process", "scope": "mine", "ward": "00004", "procedure": "1.004194"}
    query = QueueQuery.parse(raw, OFFICER)
    assert query.api_params() == {
        "scope": "mine",
        "ward": "00004",
        "procedure": "1.004194",
        "state": "",
        "cursor": "",
        "limit": 25,
        "stage": "in_process",
    }
    overdue = QueueQuery.parse({"tab": "overdue"}, OFFICER).api_params()
    assert overdue["overdue"] == "true" and "stage" not in overdue
    soon = QueueQuery.parse({"tab": "due_soon"}, OFFICER).api_params()
    assert soon["due_soon"] == "true" and "overdue" not in soon and "stage" not in soon


def test_a_search_ignores_the_tab_and_filters_as_review_does() -> None:
    query = QueueQuery.parse({"tab": "overdue", "q": " 0912345678 ", "ward": "1"}, OFFICER)
    assert query.api_params() == {"q": "0912345678", "limit": 25}
    assert query.link() == "/queues?ward=1&q=0912345678"


def test_unknown_tabs_and_scopes_an_officer_may_not_pick_fall_back_to_the_defaults() -> None:
    query = QueueQuery.parse({"tab": "everything", "scope": "unit"}, OFFICER)
    assert (query.tab, query.scope) == ("reception", "")
    assert scopes_for("officer") == ("mine", "unassigned")
    assert QueueQuery.parse({"scope": "unit"}, CHIEF).scope == "unit"


def test_links_keep_the_filters_and_a_new_tab_starts_at_the_first_page() -> None:
    query = QueueQuery.parse({"tab": "reception", "ward": "00004", "cursor": "abc"}, OFFICER)
    assert query.link(tab="overdue") == "/queues?tab=overdue&ward=00004"
    assert query.link(cursor="next") == "/queues?tab=reception&ward=00004&cursor=next"
    sized = QueueQuery.parse({"size": "2", "tab": "handover"}, OFFICER)
    assert sized.api_params()["limit"] == 2 and sized.link() == "/queues?tab=handover&size=2"
    assert QueueQuery.parse({"size": "5000"}, OFFICER).size == 25


def test_tab_counts_come_from_reviews_counts_and_none_are_invented() -> None:
    counts = {
        "stages": [
            {"stage": "reception", "total": 3},
            {"stage": "in_process", "total": 1},
            {"stage": "waiting_citizen", "total": 0},
            {"stage": "handover", "total": 2},
        ],
        "total": 6,
        "overdue": 1,
        "due_soon": 2,
    }
    assert tab_counts(counts) == {
        "reception": 3,
        "in_process": 1,
        "waiting_citizen": 0,
        "handover": 2,
        "overdue": 1,
        "due_soon": 2,
    }
    assert tab_counts(None) == {}


def test_the_state_filter_offers_the_states_by_name_and_keeps_one_not_listed() -> None:
    offered = states("", VI)
    assert ("checking", "Đang thẩm định") in offered and len(offered) == 6
    assert states("custom_state", VI)[-1] == ("custom_state", "custom_state")


def test_colleagues_are_named_from_reviews_me() -> None:
    me = {"officers": [{"id": "cb-2", "name": "Lê Thị Bình"}, {"name": "no id"}]}
    names = names_of(me)
    assert names == {"cb-2": "Lê Thị Bình"}
    assert whose_move(task(officer_id="cb-2"), VI, "cb-1", names) == "Cán bộ Lê Thị Bình"
    assert row(task(officer_id="cb-2"), VI, "cb-1", names).holder == "Lê Thị Bình"
    assert whose_move(task(officer_id="cb-9"), VI, "cb-1", names) == "Cán bộ cb-9"
