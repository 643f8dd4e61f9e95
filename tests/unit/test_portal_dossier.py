"""The dossier page's view logic: the form under the procedure's labels, the documents, the
history, and exactly the buttons the API allows this officer."""

from __future__ import annotations

from datetime import UTC, datetime

from services.intake.catalogue import load_catalogue
from services.portal import allowed
from services.portal import dossier_view as view
from services.portal.assets import Assets
from services.portal.dossier_actions import promised_at
from services.portal.i18n import Catalogue
from services.portal.rendering import Pages
from services.portal.session import SignedInOfficer
from tests.factories import VALID_FORM
from tests.unit.test_portal_queues import task

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
CATALOGUE = Catalogue()
VI = CATALOGUE.translator("vi")
EN = CATALOGUE.translator("en")
PROCEDURE = load_catalogue().procedures["1.004194"]
SCHEMA = PROCEDURE.model.model_json_schema()


def officer(role: str = "officer", id: str = "cb-1", unit: str = "CAP-BADINH") -> SignedInOfficer:
    return SignedInOfficer(id, "Tên", role, unit, "tok", 4e9)


def test_the_answers_carry_the_procedures_labels_in_each_language() -> None:
    form = {**VALID_FORM, "stay_from": "2026-12-01", "purpose": "work"}
    sections = view.answers(SCHEMA, form, "vi", VI)
    titles = [s.title for s in sections]
    assert titles == ["Người nộp hồ sơ", "Nơi đăng ký tạm trú", "Thông tin khác"]
    residence = {a.label: a.value for a in sections[1].answers}
    assert residence == {"Mã phường/xã": "00004", "Địa chỉ": "Số 12 ngõ 34 phố Đội Cấn"}
    applicant = {a.label: a.value for a in sections[0].answers}
    assert applicant["Họ, chữ đệm và tên"] == "Nguyễn Thị Lan"
    assert applicant["Ngày sinh"] == "17/05/1990"
    other = {a.label: a.value for a in sections[2].answers}
    assert other == {"Tạm trú từ ngày": "01/12/2026", "Mục đích": "Làm việc"}
    assert applicant["Giới tính"] == "Nữ"
    english = view.answers(SCHEMA, form, "en", EN)
    assert [s.title for s in english][1] == "Place of temporary residence"
    assert {a.label for a in english[2].answers} == {"Staying from", "Purpose"}


def test_answers_without_a_schema_are_still_shown_under_their_names() -> None:
    form = {"applicant": {"full_name": "Lan"}, "note": "x"}
    sections = view.answers(None, form, "vi", VI)
    assert [(s.title, [(a.label, a.value) for a in s.answers]) for s in sections] == [
        ("Người nộp hồ sơ", [("full_name", "Lan")]),
        ("Thông tin khác", [("note", "x")]),
    ]


def test_documents_are_named_by_the_procedure_and_served_by_the_portal() -> None:
    dossier = {
        "documents": [
            {"document_type": "ct01", "id": "a1", "media_type": "application/pdf", "size": 10},
            {"document_type": "legal_residence_proof", "id": "a2", "media_type": "image/jpeg"},
        ]
    }
    found = view.documents("G01-1", dossier, {"documents": PROCEDURE.summary()["documents"]}, "vi")
    assert [(d.name, d.kind, d.url) for d in found] == [
        ("Tờ khai thay đổi thông tin cư trú (CT01)", "pdf", "/documents/G01-1/a1"),
        ("Giấy tờ chứng minh chỗ ở hợp pháp", "image", "/documents/G01-1/a2"),
    ]


def test_the_history_shows_each_steps_actor_time_deadline_and_timeliness() -> None:
    steps = [
        {
            "action": "receive",
            "state": "checking",
            "decided_by": "cb-1",
            "decided_at": "2026-12-01T02:00:00+00:00",
            "due_at": "2026-12-01T04:00:00+00:00",
            "on_time": True,
        },
        {"action": "approve", "state": "decided", "decided_by": "cb-tp", "on_time": False},
        {"action": "future_action", "state": "new_state"},
    ]
    shown = view.history(task(history=steps), VI)
    assert [(s.action, s.actor, s.at, s.due_at, s.on_time) for s in shown] == [
        ("Tiếp nhận hồ sơ", "cb-1", "09:00 01/12/2026", "11:00 01/12/2026", True),
        ("Phê duyệt", "cb-tp", "", "", False),
        ("future_action", "", "", "", None),
    ]
    assert shown[0].state == "Đang thẩm định" and shown[2].state == "new_state"


def test_buttons_are_exactly_the_allowed_actions_with_their_reason_rule() -> None:
    actions = [
        {"action": "receive", "name_vi": "Tiếp nhận", "requires_reason": False, "reason": "none"},
        {"action": "refuse", "name_vi": "Từ chối", "requires_reason": True, "reason": "required"},
        {"action": "brand_new", "name_vi": "Việc mới", "requires_reason": False},
    ]
    shown = allowed.buttons(task(actions=actions, allowed_actions=["receive", "refuse"]), VI)
    assert [(b.action, b.label, b.reason) for b in shown] == [
        ("receive", "Tiếp nhận hồ sơ", "none"),
        ("refuse", "Từ chối tiếp nhận", "required"),
        ("brand_new", "Việc mới", "optional"),
    ]
    assert allowed.buttons(task(actions=[], allowed_actions=[]), VI) == []


def test_an_older_review_without_reason_rules_offers_an_optional_reason() -> None:
    shown = allowed.buttons(task(allowed_actions=["approve"]), EN)
    assert [(b.action, b.label, b.reason) for b in shown] == [("approve", "Approve", "optional")]


def test_claim_release_reassign_and_apology_follow_the_roles() -> None:
    assert allowed.holding(task(officer_id="cb-1"), officer(), NOW) == ["release"]
    assert allowed.holding(task(officer_id=None), officer(), NOW) == ["claim"]
    assert allowed.holding(task(officer_id=None), officer(unit="CAP-HOANKIEM"), NOW) == []
    assert allowed.holding(task(officer_id="cb-2"), officer(), NOW) == []
    late = task(officer_id="cb-2", timeliness="overdue")
    assert allowed.holding(late, officer("chief", "cb-tp"), NOW) == ["apology"]
    assert allowed.holding(late, officer("supervisor", "gs", "PC06-HN"), NOW) == []
    escalated = {**late, "escalated_to": "gs"}
    assert allowed.holding(escalated, officer("supervisor", "gs", "PC06-HN"), NOW) == [
        "reassign",
        "apology",
    ]
    assert allowed.holding(task(open=False, waiting=None), officer(), NOW) == []


def test_the_apology_is_offered_when_the_step_or_the_promised_date_is_near() -> None:
    chief = officer("chief", "cb-tp")
    far = task(officer_id="cb-2", promised_at="2026-12-10T10:00:00+00:00")
    near = task(officer_id="cb-2", promised_at="2026-12-03T10:00:00+00:00")
    assert allowed.holding(far, chief, NOW) == []
    assert allowed.holding(near, chief, NOW) == ["apology"]
    assert allowed.holding(near, officer(id="cb-2"), NOW) == ["release"]  # not an officer's
    assert allowed.holding(task(officer_id="cb-2"), chief, NOW) == ["apology"]  # none promised


def test_why_it_waits() -> None:
    assert view.why_waiting(task(), VI) == "Chờ cán bộ xử lý ở bước này."
    paused = task(waiting={"whose_move": "citizen", "clock": "paused"})
    assert view.why_waiting(paused, VI) == (
        "Chờ công dân bổ sung giấy tờ hoặc nộp phí. Thời hạn tạm dừng trong lúc chờ công dân."
    )


def test_the_apologys_new_date_is_sent_with_vietnams_offset() -> None:
    assert promised_at("2026-12-10", "10:30") == "2026-12-10T10:30:00+07:00"
    assert promised_at("2026-12-10", None) == "2026-12-10T16:00:00+07:00"
    assert promised_at("10/12/2026", "10:30") is None
    assert promised_at(None, None) is None


def test_sizes_read_for_people() -> None:
    assert view.size_text(512, "vi") == "512 B"
    assert view.size_text(1536, "vi") == "1,5 KB" and view.size_text(1536, "en") == "1.5 KB"
    assert view.size_text(5 * 1024 * 1024, "en") == "5.0 MB"


def test_shown_values() -> None:
    assert view.shown(True, VI) == "Có"
    assert view.shown(["a", "b"], VI) == "a, b"
    assert view.shown("2026-01-02", VI) == "02/01/2026"


def test_intakes_listing_names_each_document_in_the_pages_language() -> None:
    listing = {
        "dossier_code": "G01-1",
        "documents": [
            {
                "id": "f1",
                "name": "Tờ khai CT01",
                "name_en": "Form CT01",
                "content_type": "image/png",
                "size": 2048,
                "sha256": "ab",
            }
        ],
    }
    vi, en = view.listed(listing, "vi"), view.listed(listing, "en")
    assert [(d.name, d.kind, d.url, d.sha256) for d in vi] == [
        ("Tờ khai CT01", "image", "/documents/G01-1/f1", "ab")
    ]
    assert en[0].name == "Form CT01"


def test_the_history_names_colleagues_the_citizen_and_the_system() -> None:
    steps = [
        {"action": "receive", "decided_by": "cb-2"},
        {"action": "supplemented", "decided_by": "citizen"},
        {"action": "escalate", "decided_by": "system"},
        {"action": "print", "decided_by": "cb-2", "form": "receipt"},
    ]
    shown = view.history(task(history=steps), VI, {"cb-2": "Lê Thị Bình"})
    assert [s.actor for s in shown] == [
        "Lê Thị Bình (cb-2)",
        "Công dân",
        "Hệ thống",
        "Lê Thị Bình (cb-2)",
    ]
    assert shown[3].action == "In phiếu: Giấy tiếp nhận hồ sơ và hẹn trả kết quả"


def test_a_list_of_people_is_shown_one_per_line_under_their_labels() -> None:
    procedure = load_catalogue().procedures["1.004222"]
    schema = procedure.model.model_json_schema()
    form = dict(procedure.example)
    members = form.get("members")
    assert isinstance(members, list) and members, "the example moves someone with the applicant"
    sections = view.answers(schema, form, "vi", VI)
    lines = [a for s in sections for a in s.answers if a.label.endswith("(1)")]
    assert lines, [a.label for s in sections for a in s.answers]
    assert "full_name" not in lines[0].value and "date_of_birth" not in lines[0].value
    assert str(members[0]["full_name"]) in lines[0].value


def test_the_national_portal_sync_is_shown_in_words_and_only_when_known() -> None:
    assert view.national_sync(None, VI) is None  # the sync is off, or knows nothing of it
    retrying = view.national_sync(
        {
            "state": "retrying",
            "added": False,
            "last_attempt_at": "2026-12-01T03:00:00+00:00",
            "last_error": "HTTP 503",
            "next_try_at": "2026-12-01T03:05:00+00:00",
            "pending": [{"kind": "add", "event_id": "e1", "status": 1}] * 2,
        },
        VI,
    )
    assert retrying == view.NationalSync(
        state="retrying",
        label="Gửi chưa được, sẽ thử lại",
        css="overdue",
        last_attempt_at="10:00 01/12/2026",
        next_try_at="10:05 01/12/2026",
        last_error="HTTP 503",
        pending=2,
    )
    synced = view.national_sync(
        {"state": "in_sync", "last_success_at": "2026-12-01T04:00:00+00:00", "last_error": "x"},
        EN,
    )
    assert synced is not None
    assert (synced.label, synced.last_success_at, synced.last_error) == (
        "In sync",
        "11:00 01/12/2026",
        "",  # an error since overcome is not shown
    )
    odd = view.national_sync({"state": "something-new"}, VI)
    assert odd is not None and odd.state == "pending"
    down = view.national_sync({"unavailable": True}, VI)
    assert down is not None and "không trả lời" in down.label


def test_the_national_portal_block_renders_each_state() -> None:
    env = Pages(Assets(), CATALOGUE, "vi").env
    template = env.get_template("dossier/national.html")
    assert template.render(t=VI, national=None).strip() == ""
    retrying = view.national_sync({"state": "retrying", "last_error": "HTTP 503"}, VI)
    html = template.render(t=VI, national=retrying)
    assert 'id="national"' in html and "Gửi chưa được, sẽ thử lại" in html
    assert 'id="national-error">HTTP 503<' in html
    down = template.render(t=VI, national=view.national_sync({"unavailable": True}, VI))
    assert "không trả lời" in down and "national-error" not in down


def test_a_supplement_request_lists_the_procedures_documents_to_tick_and_shows_them_after() -> None:
    actions = [
        {"action": "request_supplement", "reason": "required", "asks_documents": True},
        {"action": "receive", "reason": "none"},
    ]
    shown = allowed.buttons(task(actions=actions), VI)
    assert [(b.action, b.asks_documents) for b in shown] == [
        ("request_supplement", True),
        ("receive", False),
    ]
    procedure = {"documents": PROCEDURE.summary()["documents"]}
    kinds = view.document_kinds(procedure, "en")
    assert kinds == [
        ("ct01", "Residence change declaration (CT01)"),
        ("legal_residence_proof", "Proof of lawful residence"),
    ]
    assert view.document_kinds(None, "vi") == []
    steps = [{"action": "request_supplement", "decided_by": "cb-1", "missing": ["ct01", "x"]}]
    [step] = view.history(task(history=steps), EN, {}, dict(kinds))
    assert step.missing == "Residence change declaration (CT01), x"  # an unknown kind by its id
    env = Pages(Assets(), CATALOGUE, "vi").env
    form = env.get_template("dossier/macros.html").module.missing_field(  # type: ignore[attr-defined]
        "action-request_supplement", view.document_kinds(procedure, "vi"), VI
    )
    assert form.count('type="checkbox" name="missing"') == 2
    assert "<legend>Giấy tờ cần bổ sung</legend>" in form and 'value="ct01"' in form
