"""Partner routes. Operators (an admin's or supervisor's bearer token) manage partners under
`/v1/partners`; a partner, with its own API key (`Authorization: Bearer mcp_…`), manages its
endpoints under `/v1/partner`. Each route parses, calls a use case of `partner_accounts`, and
maps its errors to problem+json."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.notify import partner_accounts as accounts
from services.notify.endpoint_delivery import ConflictError
from services.notify.endpoints import Endpoint, PartnerAccount, PartnerMessage, subscribable
from services.notify.partners import API_KEY_PREFIX, UnsafeEndpoint, hash_api_key
from shared.contracts.identifiers import EndpointId, MultilineText, PartnerId, Text
from shared.contracts.projections import PERSONAL_DATA
from shared.contracts.registry import EVENT_TYPES
from shared.problems import Problem
from shared.roles import OPERATORS
from shared.web import OfficerClaims, from_state

router = APIRouter(prefix="/v1", tags=["partners"])
AccountsDep = Annotated[accounts.Accounts, Depends(from_state("partners", accounts.Accounts))]
SCOPES = frozenset({PERSONAL_DATA})
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
EndpointPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


# --- who calls ---------------------------------------------------------------------------------


async def operator(claims: OfficerClaims) -> str:
    if claims.role not in OPERATORS:
        raise Problem(
            403,
            "Only an admin or a supervisor may manage partners.",
            "Chỉ quản trị viên hoặc cán bộ giám sát được quản lý đối tác.",
            code="forbidden",
        )
    return claims.officer_id


async def calling_partner(request: Request, a: AccountsDep) -> PartnerAccount:
    """The partner whose API key the bearer header holds (401 otherwise)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    found = None
    if scheme.lower() == "bearer" and key.startswith(API_KEY_PREFIX):
        found = await a.store.partner_by_key(hash_api_key(key.strip()))
    if found is None:
        raise Problem(
            401,
            "A partner API key is required (Authorization: Bearer mcp_…).",
            "Cần khóa API của đối tác.",
            code="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


OperatorId = Annotated[str, Depends(operator)]
Caller = Annotated[PartnerAccount, Depends(calling_partner)]


def _not_found(what: str) -> Problem:
    return Problem(404, f"No {what}.", f"Không tìm thấy {what}.", code="not_found")


def _conflict(what: str) -> Problem:
    return Problem(
        409,
        f"{what} exists already, or changed meanwhile: read it again.",
        f"{what} đã tồn tại hoặc vừa thay đổi: vui lòng đọc lại.",
        code="conflict",
    )


def _unsafe(exc: UnsafeEndpoint) -> Problem:
    return Problem(
        422,
        f"The endpoint URL is refused: {exc}.",
        "Địa chỉ điểm nhận bị từ chối (địa chỉ nội bộ, loopback hoặc không hợp lệ).",
        code="unsafe_endpoint",
        extra={"errors": [{"field": "url", "message": str(exc)}]},
    )


def _bad(field: str, message: str, vi: str) -> Problem:
    return Problem(
        422, message, vi, code="invalid", extra={"errors": [{"field": field, "message": message}]}
    )


# --- partners ----------------------------------------------------------------------------------


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: PartnerId
    name: Text = Field(max_length=200)
    contact_email: Email
    scopes: list[str] = Field(default_factory=list, description=f"Granted: {PERSONAL_DATA}.")


class PartnerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, max_length=200)
    contact_email: Email | None = None
    scopes: list[str] | None = None


class PartnerView(BaseModel):
    id: str
    name: str
    contact_email: str
    scopes: list[str]
    created_at: datetime
    created_by: str


class PartnerCreated(PartnerView):
    api_key: str = Field(description="Shown once: only its hash is kept.")


def partner_view(p: PartnerAccount) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "contact_email": p.contact_email,
        "scopes": sorted(p.scopes),
        "created_at": p.created_at,
        "created_by": p.created_by,
    }


def _scopes(scopes: list[str] | None) -> None:
    unknown = sorted(set(scopes or []) - SCOPES)
    if unknown:
        raise _bad("scopes", f"unknown scopes: {unknown}", "Phạm vi không hợp lệ.")


@router.post("/partners", status_code=201, response_model=PartnerCreated)
async def create_partner(body: PartnerIn, a: AccountsDep, by: OperatorId) -> PartnerCreated:
    """A new partner; its API key is in this answer only."""
    _scopes(body.scopes)
    try:
        created, key = await accounts.create_partner(
            a,
            partner_id=body.id,
            name=body.name,
            contact_email=body.contact_email,
            scopes=frozenset(body.scopes),
            by=by,
        )
    except accounts.Conflict as exc:
        raise _conflict(f"Partner {body.id}") from exc
    return PartnerCreated(**partner_view(created), api_key=key)


@router.get("/partners", response_model=list[PartnerView])
async def list_partners(
    a: AccountsDep, _: OperatorId, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[PartnerView]:
    return [PartnerView(**partner_view(p)) for p in await a.store.all_partners(limit)]


@router.get("/partners/{partner_id}", response_model=PartnerView)
async def read_partner(partner_id: PartnerId, a: AccountsDep, _: OperatorId) -> PartnerView:
    try:
        return PartnerView(**partner_view(await accounts.partner(a, partner_id)))
    except accounts.NotFound as exc:
        raise _not_found(f"partner {partner_id}") from exc


@router.patch("/partners/{partner_id}", response_model=PartnerView)
async def update_partner(
    partner_id: PartnerId, body: PartnerPatch, a: AccountsDep, by: OperatorId
) -> PartnerView:
    _scopes(body.scopes)
    changes = body.model_dump(exclude_none=True)
    try:
        updated = await accounts.update_partner(a, partner_id, by=by, changes=changes)
    except accounts.NotFound as exc:
        raise _not_found(f"partner {partner_id}") from exc
    except accounts.Conflict as exc:
        raise _conflict(f"Partner {partner_id}") from exc
    return PartnerView(**partner_view(updated))


@router.post("/partners/{partner_id}/api-key", response_model=PartnerCreated)
async def replace_key(partner_id: PartnerId, a: AccountsDep, by: OperatorId) -> PartnerCreated:
    """A new API key (shown once); the old one stops working at once."""
    try:
        key = await accounts.new_partner_key(a, partner_id, by=by)
        return PartnerCreated(**partner_view(await accounts.partner(a, partner_id)), api_key=key)
    except accounts.NotFound as exc:
        raise _not_found(f"partner {partner_id}") from exc
    except accounts.Conflict as exc:
        raise _conflict(f"Partner {partner_id}") from exc


@router.delete("/partners/{partner_id}", status_code=204)
async def delete_partner(partner_id: PartnerId, a: AccountsDep, by: OperatorId) -> Response:
    try:
        await accounts.delete_partner(a, partner_id, by=by)
    except accounts.NotFound as exc:
        raise _not_found(f"partner {partner_id}") from exc
    except accounts.Conflict as exc:
        raise _conflict(f"Partner {partner_id}") from exc
    return Response(status_code=204)


class Change(BaseModel):
    cursor: str = Field(description="Where the next page (older changes) starts.")
    at: datetime
    by: str
    action: str
    endpoint_id: str | None = None
    details: dict[str, Any] = {}


def _changes(docs: list[dict[str, Any]]) -> list[Change]:
    shown = []
    for doc in docs:
        skip = {"_id", "at", "at_key", "by", "action", "endpoint_id", "partner_id"}
        shown.append(
            Change(
                cursor=doc["at_key"],
                at=doc["at"],
                by=doc["by"],
                action=doc["action"],
                endpoint_id=doc.get("endpoint_id"),
                details={k: v for k, v in doc.items() if k not in skip},
            )
        )
    return shown


Before = Annotated[
    str | None,
    Query(max_length=100, description="The `cursor` of the last change of the page before."),
]


@router.get("/partners/{partner_id}/changes", response_model=list[Change])
async def partner_changes(
    partner_id: PartnerId,
    a: AccountsDep,
    _: OperatorId,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Change]:
    """Every change to the partner and its endpoints, newest first, with who made it."""
    return _changes(await a.store.changes_of(partner_id, before=before, limit=limit))


# --- the partner's own endpoints ---------------------------------------------------------------


def _event_types(types: list[str] | None) -> None:
    known = set(EVENT_TYPES)
    bad = sorted(t for t in types or [] if not subscribable(t, known))
    if bad:
        raise _bad(
            "event_types",
            f"not event types a partner may take: {bad}",
            "Loại sự kiện không hợp lệ.",
        )


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, pattern=r"^https?://")
    event_types: list[str] = Field(min_length=1, max_length=50)
    units: list[EndpointId] = Field(
        default_factory=list, max_length=200, description="Empty: the whole province."
    )
    description: MultilineText = Field(default="", max_length=1000)
    rate_limit_per_second: float = Field(default=10.0, gt=0, le=1000)
    enabled: bool = True


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    units: list[EndpointId] | None = Field(default=None, max_length=200)
    description: MultilineText | None = Field(default=None, max_length=1000)
    rate_limit_per_second: float | None = Field(default=None, gt=0, le=1000)
    enabled: bool | None = None


class EndpointView(BaseModel):
    id: str
    partner_id: str
    url: str
    event_types: list[str]
    units: list[str]
    description: str
    rate_limit_per_second: float
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_until: datetime | None
    created_at: datetime


class EndpointWithSecret(EndpointView):
    secret: str = Field(description="Shown once: at creation and at each rotation.")


def endpoint_view(e: Endpoint) -> dict[str, Any]:
    return {
        "id": e.id,
        "partner_id": e.partner_id,
        "url": e.url,
        "event_types": list(e.event_types),
        "units": list(e.units),
        "description": e.description,
        "rate_limit_per_second": e.rate_limit_per_second,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "failing_since": e.failing_since,
        "previous_secret_until": e.keys.previous_until if e.keys.previous else None,
        "created_at": e.created_at,
    }


@router.get("/partner", response_model=PartnerView, tags=["partner API"])
async def me(caller: Caller) -> PartnerView:
    return PartnerView(**partner_view(caller))


@router.post(
    "/partner/endpoints", status_code=201, response_model=EndpointWithSecret, tags=["partner API"]
)
async def create_endpoint(body: EndpointIn, a: AccountsDep, caller: Caller) -> EndpointWithSecret:
    _event_types(body.event_types)
    try:
        created, secret = await accounts.create_endpoint(
            a, caller, fields=body.model_dump(), by=f"partner:{caller.id}"
        )
    except UnsafeEndpoint as exc:
        raise _unsafe(exc) from exc
    except accounts.TooMany as exc:
        raise Problem(
            409,
            f"{exc}: delete one first.",
            f"Mỗi đối tác có tối đa {accounts.MAX_ENDPOINTS} điểm nhận: hãy xoá bớt một điểm.",
            code="too_many_endpoints",
        ) from exc
    return EndpointWithSecret(**endpoint_view(created), secret=secret)


@router.get("/partner/endpoints", response_model=list[EndpointView], tags=["partner API"])
async def list_endpoints(a: AccountsDep, caller: Caller) -> list[EndpointView]:
    return [EndpointView(**endpoint_view(e)) for e in await a.store.endpoints_of(caller.id)]


async def _own(a: accounts.Accounts, caller: PartnerAccount, endpoint_id: str) -> Endpoint:
    try:
        return await accounts.endpoint(a, caller, endpoint_id)
    except accounts.NotFound as exc:
        raise _not_found(f"endpoint {endpoint_id}") from exc


@router.get("/partner/endpoints/{endpoint_id}", response_model=EndpointView, tags=["partner API"])
async def read_endpoint(endpoint_id: EndpointPath, a: AccountsDep, caller: Caller) -> EndpointView:
    return EndpointView(**endpoint_view(await _own(a, caller, endpoint_id)))


@router.patch("/partner/endpoints/{endpoint_id}", response_model=EndpointView, tags=["partner API"])
async def update_endpoint(
    endpoint_id: EndpointPath, body: EndpointPatch, a: AccountsDep, caller: Caller
) -> EndpointView:
    _event_types(body.event_types)
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(k) is None for k in changes if k != "units"):
        raise _bad("body", "a field cannot be set to null", "Không được để trống trường.")
    try:
        updated = await accounts.update_endpoint(
            a, caller, endpoint_id, changes=changes, by=f"partner:{caller.id}"
        )
    except accounts.NotFound as exc:
        raise _not_found(f"endpoint {endpoint_id}") from exc
    except accounts.Conflict as exc:
        raise _conflict(f"Endpoint {endpoint_id}") from exc
    except UnsafeEndpoint as exc:
        raise _unsafe(exc) from exc
    return EndpointView(**endpoint_view(updated))


@router.delete("/partner/endpoints/{endpoint_id}", status_code=204, tags=["partner API"])
async def delete_endpoint(endpoint_id: EndpointPath, a: AccountsDep, caller: Caller) -> Response:
    try:
        await accounts.delete_endpoint(a, caller, endpoint_id, by=f"partner:{caller.id}")
    except accounts.NotFound as exc:
        raise _not_found(f"endpoint {endpoint_id}") from exc
    except accounts.Conflict as exc:
        raise _conflict(f"Endpoint {endpoint_id}") from exc
    return Response(status_code=204)


@router.post(
    "/partner/endpoints/{endpoint_id}/rotate",
    response_model=EndpointWithSecret,
    tags=["partner API"],
)
async def rotate(endpoint_id: EndpointPath, a: AccountsDep, caller: Caller) -> EndpointWithSecret:
    """A new signing secret (in this answer only); the old one keeps signing beside it for
    the overlap (MOTCUA_NOTIFY_SECRET_OVERLAP_HOURS)."""
    try:
        rotated, secret = await accounts.rotate_secret(
            a, caller, endpoint_id, by=f"partner:{caller.id}"
        )
    except accounts.NotFound as exc:
        raise _not_found(f"endpoint {endpoint_id}") from exc
    except accounts.Conflict as exc:
        raise _conflict(f"Endpoint {endpoint_id}") from exc
    return EndpointWithSecret(**endpoint_view(rotated), secret=secret)


class Attempt(BaseModel):
    at: datetime
    message_id: str
    webhook_id: str
    event_id: str
    event_type: str
    dossier: str
    attempt: int
    status: int | None
    outcome: str
    latency_ms: int
    response: str
    error: str | None = None


class AttemptPage(BaseModel):
    attempts: list[Attempt]
    next_cursor: str | None = None


@router.get(
    "/partner/endpoints/{endpoint_id}/attempts", response_model=AttemptPage, tags=["partner API"]
)
async def attempts(
    endpoint_id: EndpointPath,
    a: AccountsDep,
    caller: Caller,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AttemptPage:
    """The endpoint's attempts, newest first (kept 30 days)."""
    await _own(a, caller, endpoint_id)
    docs = await a.store.attempts_of(endpoint_id, before=cursor, limit=limit + 1)
    page = [
        Attempt(
            at=d["at"],
            message_id=d["message_id"],
            webhook_id=d["webhook_id"],
            event_id=d["event_id"],
            event_type=d["event_type"],
            dossier=d["dossier"],
            attempt=int(d.get("try", 1)),
            status=d.get("status"),
            outcome=d["outcome"],
            latency_ms=int(d.get("latency_ms", 0)),
            response=d.get("response", ""),
            error=d.get("error"),
        )
        for d in docs[:limit]
    ]
    more = docs[limit - 1]["at_key"] if len(docs) > limit else None
    return AttemptPage(attempts=page, next_cursor=more)


class MessageView(BaseModel):
    id: str
    event_id: str
    event_type: str
    dossier: str
    state: str
    tries: int
    last_status: int | None
    recovered: int
    created_at: datetime


def message_view(m: PartnerMessage) -> MessageView:
    return MessageView(
        id=m.id,
        event_id=m.event_id,
        event_type=m.event_type,
        dossier=m.dossier,
        state=m.state,
        tries=m.tries,
        last_status=m.last_status,
        recovered=m.recovered,
        created_at=m.created_at,
    )


@router.post(
    "/partner/endpoints/{endpoint_id}/messages/{message_id}/resend",
    response_model=MessageView,
    tags=["partner API"],
)
async def resend(
    endpoint_id: EndpointPath,
    message_id: Annotated[str, Path(max_length=200)],
    a: AccountsDep,
    caller: Caller,
) -> MessageView:
    """Send one message (an attempt's `message_id`) again, now, once."""
    try:
        sent = await accounts.resend(a, caller, endpoint_id, message_id, by=f"partner:{caller.id}")
    except accounts.NotFound as exc:
        raise _not_found(f"message {message_id}") from exc
    except ConflictError as exc:
        raise _conflict(f"Message {message_id}") from exc
    return message_view(sent)


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="At most 14 days back.")


class Recovered(BaseModel):
    messages: int = Field(description="Failed messages queued again, each sent once.")


@router.post(
    "/partner/endpoints/{endpoint_id}/recover",
    status_code=202,
    response_model=Recovered,
    tags=["partner API"],
)
async def recover(
    endpoint_id: EndpointPath, body: RecoverIn, a: AccountsDep, caller: Caller
) -> Recovered:
    """Send again every message that failed since `since`, in the background, in order, at the
    endpoint's rate limit, once each."""
    await _own(a, caller, endpoint_id)
    try:
        moved = await accounts.recover(
            a, caller, endpoint_id, since=body.since, by=f"partner:{caller.id}"
        )
    except ValueError as exc:
        raise _bad("since", str(exc), "Thời điểm không hợp lệ (tối đa 14 ngày trước).") from exc
    return Recovered(messages=moved)


@router.get("/partner/changes", response_model=list[Change], tags=["partner API"])
async def own_changes(
    a: AccountsDep,
    caller: Caller,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Change]:
    """Every change to the calling partner and its endpoints, newest first, with who made it."""
    return _changes(await a.store.changes_of(caller.id, before=before, limit=limit))


@router.get("/partners/{partner_id}/endpoints", response_model=list[EndpointView])
async def partner_endpoints(
    partner_id: PartnerId, a: AccountsDep, _: OperatorId
) -> list[EndpointView]:
    """A partner's endpoints, as operators see them (never a secret)."""
    await read_partner(partner_id, a, _)
    return [EndpointView(**endpoint_view(e)) for e in await a.store.endpoints_of(partner_id)]
