"""Status by SMS: a phone asked for a dossier's status (`sms.status_requested`, heard by
notify's inbound webhook); intake answers with `dossier.status_reported` only when the phone
is the one on the dossier. For any other phone, or a code that names no dossier, nothing is
published, so nobody learns from the answer whether a dossier exists."""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from services.intake.domain import Dossier, may_see
from services.intake.ports import Dossiers
from shared.contracts import (
    DossierStatusReported,
    DossierStatusReportedData,
    Event,
    PortalStatus,
    SmsStatusRequested,
    derived_id,
)
from shared.messaging import PermanentFailure

log = logging.getLogger(__name__)

# The portal status in words, as the national portal names it.
STATUS_WORDS: dict[PortalStatus, str] = {
    PortalStatus.NEW: "Mới đăng ký",
    PortalStatus.RECEIVED: "Được tiếp nhận",
    PortalStatus.REFUSED: "Không được tiếp nhận",
    PortalStatus.IN_PROCESS: "Đang xử lý",
    PortalStatus.SUPPLEMENT_REQUESTED: "Yêu cầu bổ sung giấy tờ",
    PortalStatus.PAYMENT_REQUESTED: "Yêu cầu thực hiện nghĩa vụ tài chính",
    PortalStatus.WITHDRAWN: "Công dân yêu cầu rút hồ sơ",
    PortalStatus.STOPPED: "Dừng xử lý",
    PortalStatus.DECIDED: "Đã xử lý xong",
    PortalStatus.DELIVERED: "Đã trả kết quả",
}


@runtime_checkable
class Publishes(Protocol):
    async def publish(self, events: list[Event]) -> None: ...


def report(dossier: Dossier, request: SmsStatusRequested, *, source: str) -> DossierStatusReported:
    """The answer to `request`: the dossier's status and promised date, to its own phone. Its
    id derives from the request's, so a redelivered request gives the same answer, sent once."""
    code = dossier.status_code
    return DossierStatusReported(
        id=derived_id(request.id, DossierStatusReported.event_type),
        source=source,
        time=request.time,
        subject=dossier.code,
        correlationid=dossier.correlation_id or request.correlationid,
        causationid=request.id,
        data=DossierStatusReportedData(
            dossier_code=dossier.code,
            status_code=code,
            status=STATUS_WORDS[code],
            promised_at=dossier.promised_at,
            phone=request.data.phone,
            message_id=request.data.message_id,
        ),
    )


async def answer(
    request: SmsStatusRequested, *, dossiers: Dossiers, publish: Publishes, source: str
) -> DossierStatusReported | None:
    """One read by key; the answer published (confirmed) if the phone is the dossier's."""
    dossier = await dossiers.get(request.data.dossier_code, with_outbox=False)
    if dossier is None or not may_see(dossier.access, secret=None, phone=request.data.phone):
        log.info(
            "status by SMS not given: no dossier for this code and phone",
            extra={"dossier": request.data.dossier_code, "message_id": request.data.message_id},
        )
        return None
    reported = report(dossier, request, source=source)
    await publish.publish([reported])
    return reported


async def on_status_requested(event: Event, dossiers: Dossiers) -> None:
    """The consumer's handler (intake's queue): answer with the store's publisher."""
    if not isinstance(event, SmsStatusRequested):
        raise PermanentFailure(f"{event.type} is not an sms.status_requested")
    if not isinstance(dossiers, Publishes):
        raise TypeError("the dossier store cannot publish")
    await answer(event, dossiers=dossiers, publish=dossiers, source=SOURCE)


SOURCE = "urn:motcua:intake:sms"
