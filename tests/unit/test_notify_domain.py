from datetime import UTC, datetime

from services.notify.domain import decision_email, mask_email
from shared.contracts import DossierApproved, DossierDecisionData, DossierRejected


def _data(reason: str | None = None) -> DossierDecisionData:
    return DossierDecisionData(
        dossier_code="G01.99-261128-0007",
        task_id="t",
        procedure_code="1.004194",
        unit_id="U",
        officer_id="o",
        decided_at=datetime.now(UTC),
        reason=reason,
    )


def test_addresses_are_masked() -> None:
    assert mask_email("lan.nguyen@example.vn") == "l***@example.vn"
    assert "lan.nguyen" not in mask_email("lan.nguyen@example.vn")


def test_approval_email_is_vietnamese_with_the_code() -> None:
    event = DossierApproved.create(source="s", subject="G01.99-261128-0007", data=_data())
    email = decision_email(event, to="a@b.vn", full_name="Nguyễn Thị Lan")
    assert "G01.99-261128-0007" in email.subject
    assert "phê duyệt" in email.text
    assert "Kính gửi Nguyễn Thị Lan" in email.text


def test_rejection_email_gives_the_reason() -> None:
    event = DossierRejected.create(
        source="s", subject="G01.99-261128-0007", data=_data("Thiếu giấy tờ chứng minh chỗ ở")
    )
    email = decision_email(event, to="a@b.vn", full_name="Lan")
    assert "không được chấp thuận" in email.subject
    assert "Thiếu giấy tờ chứng minh chỗ ở" in email.text
