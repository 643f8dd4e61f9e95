"""Notify's HTTP routes: the delivery log, an operator's resend, and template previews. Each
parses, calls a use case and maps its errors to problem+json."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ValidationError

from services.notify import operators
from services.notify.domain import Delivery, LogKey, decode_cursor
from services.notify.inbound import (
    TOLERANCE_SECONDS,
    WINDOW_SECONDS,
    BadSignature,
    Inbound,
    InboundSms,
    Outcome,
    receive,
    verify,
)
from services.notify.ports import DeliveryNotFound, Notifier, ResendConflict
from services.notify.templates import UnknownTemplate
from shared.problems import Problem
from shared.web import OfficerClaims, from_state

router = APIRouter(prefix="/v1", tags=["deliveries"])

NotifierDep = Annotated[Notifier, Depends(from_state("notifier", Notifier))]
InboundDep = Annotated[Inbound, Depends(from_state("inbound", Inbound))]
OPERATOR_ROLES = ("admin", "supervisor")


class DeliveryView(BaseModel):
    id: str
    dossier_code: str
    channel: str
    recipient: str
    trigger_event_id: str
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


class DeliveryLog(BaseModel):
    deliveries: list[DeliveryView]
    next_cursor: str | None = None


def view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        id=d.id,
        dossier_code=d.dossier_code,
        channel=d.channel,
        recipient=d.recipient,
        trigger_event_id=d.trigger.id,
        trigger_event_type=d.trigger.type,
        status=d.status,
        attempts=d.attempts,
        reason=d.reason,
        provider_message_id=d.provider_message_id,
        next_at=d.next_at,
        resend_of=d.resend_of,
        requested_by=d.requested_by,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


async def operator(claims: OfficerClaims) -> str:
    """The id of an admin or supervisor presenting a valid bearer token."""
    if claims.role not in OPERATOR_ROLES:
        raise Problem(
            403,
            "Only an admin or a supervisor may resend a notification.",
            "Chỉ quản trị viên hoặc lãnh đạo được gửi lại thông báo.",
            code="forbidden",
        )
    return claims.officer_id


def position(cursor: str | None) -> LogKey | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError as exc:
        raise Problem(
            400, "The cursor is not one this API gave.", "Con trỏ không hợp lệ.", code="bad_cursor"
        ) from exc


@router.get(
    "/deliveries", response_model=DeliveryLog, summary="A dossier's deliveries, a page at a time"
)
async def list_deliveries(
    notifier: NotifierDep,
    dossier: Annotated[str, Query(min_length=1)],
    _: OfficerClaims,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryLog:
    """Any officer's token: the log names channels and masked recipients of a citizen."""
    page, next_cursor = await operators.delivery_log(
        dossier, after=position(cursor), limit=limit, deliveries=notifier.deliveries
    )
    return DeliveryLog(deliveries=[view(d) for d in page], next_cursor=next_cursor)


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
        delivery = await operators.resend(delivery_id, requested_by=officer_id, notifier=notifier)
    except DeliveryNotFound as exc:
        raise Problem(
            404,
            f"No delivery {delivery_id}.",
            f"Không có lần gửi {delivery_id}.",
            code="delivery_not_found",
        ) from exc
    except ResendConflict as exc:
        raise Problem(
            409,
            "This delivery or its latest resend is still under way; look at the delivery log.",
            "Lần gửi này hoặc lần gửi lại gần nhất vẫn đang xử lý; vui lòng xem nhật ký gửi.",
            code="resend_conflict",
        ) from exc
    return view(delivery)


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
    try:
        shown = operators.preview(
            event,
            channel,
            lang,
            routing=notifier.routing,
            templates=notifier.templates,
            sms_max_segments=int(request.app.state.settings.sms_max_segments),
        )
    except operators.TemplateNotRouted as exc:
        raise Problem(
            404,
            f"No {channel} notification is routed for {event}.",
            f"Không có thông báo {channel} cho sự kiện {event}.",
            code="template_not_found",
        ) from exc
    except UnknownTemplate as exc:
        raise Problem(404, str(exc), f"Không có mẫu: {exc}", code="template_not_found") from exc
    return Preview(
        template=shown.template,
        channel=channel,
        language=shown.language,
        subject=shown.rendered.subject,
        text=shown.rendered.text,
        html=shown.rendered.html,
        template_id=shown.zalo_template_id,
        template_data=shown.rendered.data,
    )


class InboundAnswer(BaseModel):
    status: Outcome


@router.post(
    "/sms/inbound",
    response_model=InboundAnswer,
    tags=["sms"],
    summary="The SMS gateway's signed webhook: one inbound SMS (`TT <dossier code>`)",
)
async def sms_inbound(request: Request, inbound: InboundDep) -> InboundAnswer:
    """`requested`: a status request, answered by SMS if the phone is the dossier's;
    `ignored`: no status request (no reply); `duplicate`: this message id was taken already."""
    body = await request.body()
    secret = request.app.state.settings.sms_inbound_secret.get_secret_value()
    try:
        if not secret:
            raise BadSignature("no inbound secret is configured")
        verify(secret, request.headers, body, now=time.time(), tolerance=TOLERANCE_SECONDS)
    except BadSignature as exc:
        raise Problem(
            401,
            f"The call is not signed by the SMS gateway: {exc}.",
            "Lời gọi không có chữ ký hợp lệ của cổng SMS.",
            code="bad_signature",
        ) from exc
    try:
        sms = InboundSms.model_validate_json(body)
    except ValidationError as exc:
        raise Problem(
            422,
            "The body is not an inbound SMS {from, to, text, received_at, message_id}.",
            "Nội dung không phải một tin nhắn SMS đến hợp lệ.",
            code="bad_inbound_sms",
            extra={
                "errors": [
                    {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                    for e in exc.errors()
                ]
            },
        ) from exc
    outcome = await receive(sms, inbound=inbound)
    if outcome == "limited":
        raise Problem(
            429,
            "Too many SMS from this phone in a minute; no answer is sent.",
            "Số điện thoại này gửi quá nhiều tin nhắn trong một phút; không có trả lời.",
            code="rate_limited",
            headers={"Retry-After": str(WINDOW_SECONDS)},
        )
    return InboundAnswer(status=outcome)
