"""Notify's HTTP routes: the delivery log, an operator's resend, and template previews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from services.notify import handlers
from services.notify.domain import APPLICANT_CHANNELS, sms_segments
from services.notify.handlers import Notifier
from services.notify.templates import Templates, UnknownTemplate
from shared.problems import Problem
from shared.storage import Document
from shared.web import OfficerClaims, from_state

router = APIRouter(prefix="/v1", tags=["deliveries"])

NotifierDep = Annotated[Notifier, Depends(from_state("notifier", Notifier))]
OPERATOR_ROLES = ("admin", "supervisor")


class DeliveryView(BaseModel):
    id: str
    dossier_code: str
    channel: str
    recipient: str
    trigger_event_id: str | None = None
    trigger_event_type: str
    status: str
    attempts: int
    reason: str | None = None
    provider_message_id: str | None = None
    next_at: datetime | None = None
    resend_of: str | None = None
    requested_by: str | None = None
    created_at: datetime
    updated_at: datetime


def view(doc: Document) -> DeliveryView:
    return DeliveryView(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


def operator(claims: OfficerClaims) -> str:
    """The id of an admin or supervisor presenting a valid bearer token."""
    if claims.role not in OPERATOR_ROLES:
        raise Problem(
            403,
            "Only an admin or a supervisor may resend a notification.",
            "Chỉ quản trị viên hoặc lãnh đạo được gửi lại thông báo.",
            code="forbidden",
        )
    return claims.officer_id


@router.get("/deliveries", response_model=list[DeliveryView], summary="A dossier's deliveries")
async def list_deliveries(
    notifier: NotifierDep, dossier: Annotated[str, Query(min_length=1)], _: OfficerClaims
) -> list[DeliveryView]:
    """Any officer's token: the log names channels and masked recipients of a citizen."""
    cursor = notifier.store.deliveries.find({"dossier_code": dossier}).sort("created_at", 1)
    return [view(await notifier.store.current(doc)) async for doc in cursor]


@router.post(
    "/deliveries/{delivery_id}/resend",
    response_model=DeliveryView,
    summary="Send one delivery again (admin or supervisor)",
)
async def resend_delivery(
    notifier: NotifierDep,
    officer_id: Annotated[str, Depends(operator)],
    delivery_id: Annotated[str, Path(min_length=1)],
) -> DeliveryView:
    try:
        doc = await handlers.resend(delivery_id, requested_by=officer_id, notifier=notifier)
    except handlers.DeliveryNotFound as exc:
        raise Problem(
            404,
            f"No delivery {delivery_id}.",
            f"Không có lần gửi {delivery_id}.",
            code="delivery_not_found",
        ) from exc
    except handlers.ResendConflict as exc:
        raise Problem(
            409,
            "This delivery or its latest resend is still under way; look at the delivery log.",
            "Lần gửi này hoặc lần gửi lại gần nhất vẫn đang xử lý; vui lòng xem nhật ký gửi.",
            code="resend_conflict",
        ) from exc
    return view(doc)


SAMPLE_CONTEXT: dict[str, Any] = {
    "event_type": "sample",
    "dossier_code": "G01.99-260609-0001",
    "full_name": "Nguyễn Thị Lan",
    "procedure_name": "Đăng ký tạm trú",
    "promised_at": datetime(2026, 6, 12, 10, 0, tzinfo=UTC),
    "previous_promised_at": datetime(2026, 6, 12, 10, 0, tzinfo=UTC) - timedelta(days=3),
    "reason": "Cần xác minh thêm thông tin nơi cư trú",
    "missing": ["Giấy tờ chứng minh chỗ ở hợp pháp"],
    "note": "Bản chụp rõ nét, đủ các trang",
    "fee": 7000,
}


class Preview(BaseModel):
    template: str
    channel: str
    language: str
    subject: str = ""
    text: str = ""
    html: str = ""
    template_id: str | None = None
    template_data: dict[str, Any] = {}


@router.get(
    "/templates/{event}/{channel}/preview",
    response_model=Preview,
    tags=["templates"],
    summary="Render an event's template for a channel with sample data",
)
async def preview_template(
    request: Request,
    notifier: NotifierDep,
    event: Annotated[str, Path(description="Event type, e.g. dossier.received")],
    channel: Annotated[str, Path(description="email, sms or zalo")],
    lang: Annotated[str, Query(pattern=r"^[a-z]{2}$")] = "vi",
) -> Preview:
    routes = notifier.routing.applicant_channels(event)
    route = next((r for c, r in routes.items() if c == channel), None)
    if channel not in APPLICANT_CHANNELS or route is None:
        raise Problem(
            404,
            f"No {channel} notification is routed for {event}.",
            f"Không có thông báo {channel} cho sự kiện {event}.",
            code="template_not_found",
        )
    templates: Templates = notifier.templates
    try:
        rendered = templates.render(
            route.template, channel, {**SAMPLE_CONTEXT, "event_type": event}, language=lang
        )
    except UnknownTemplate as exc:
        raise Problem(404, str(exc), f"Không có mẫu: {exc}", code="template_not_found") from exc
    text = rendered.text
    if channel == "sms":  # as the gateway will receive it
        max_segments = int(request.app.state.settings.sms_max_segments)
        text = "".join(sms_segments(text, max_segments=max_segments))
    return Preview(
        template=route.template,
        channel=channel,
        language=lang
        if templates.exists(route.template, channel, lang)
        else notifier.routing.default_language,
        subject=rendered.subject,
        text=text,
        html=rendered.html,
        template_id=route.zalo_template_id,
        template_data=rendered.data,
    )
