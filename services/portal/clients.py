"""The other services' public HTTP APIs, called with the signed-in officer's token, as any
partner would. A refused call becomes an `ApiProblem` carrying the API's own message (in the
page's language), which the page shows; nothing is retried behind the officer's back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from services.portal.settings import PortalSettings

log = logging.getLogger(__name__)
Service = Literal["intake", "review", "notify", "audit"]
SERVICES: tuple[Service, ...] = ("intake", "review", "notify", "audit")


@dataclass
class ApiProblem(Exception):
    """A service refused the call (problem+json), or could not be reached (503)."""

    status: int
    detail: str
    code: str = "error"
    title: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: Any


class Apis:
    """One pooled HTTP client for the four services."""

    def __init__(self, settings: PortalSettings, client: httpx.AsyncClient | None = None) -> None:
        self.base = {
            "intake": settings.intake_url.rstrip("/"),
            "review": settings.review_url.rstrip("/"),
            "notify": settings.notify_url.rstrip("/"),
            "audit": settings.audit_url.rstrip("/"),
        }
        self.client = client or httpx.AsyncClient(timeout=settings.http_timeout_seconds)

    async def close(self) -> None:
        await self.client.aclose()

    async def call(
        self,
        method: str,
        service: Service,
        path: str,
        *,
        token: str | None,
        lang: str = "vi",
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """`method path` on `service`; the JSON answer, or `ApiProblem` if refused."""
        sent = {"Accept-Language": lang, "Accept": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            answer = await self.client.request(
                method,
                self.base[service] + path,
                params=query,
                json=json,
                content=content,
                headers=sent,
            )
        except httpx.HTTPError as exc:
            log.warning("%s %s %s failed: %r", method, service, path, exc)
            raise unavailable(service, lang) from exc
        return reply(answer, service, lang)

    async def get(self, service: Service, path: str, **kwargs: Any) -> Any:
        return (await self.call("GET", service, path, **kwargs)).body

    async def post(self, service: Service, path: str, **kwargs: Any) -> Any:
        return (await self.call("POST", service, path, **kwargs)).body

    async def fetch(
        self, service: Service, path: str, *, token: str | None, lang: str = "vi"
    ) -> httpx.Response:
        """The raw answer of a GET (documents, PDFs), refused calls as `ApiProblem`."""
        sent = {"Accept-Language": lang}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            answer = await self.client.get(self.base[service] + path, headers=sent)
        except httpx.HTTPError as exc:
            raise unavailable(service, lang) from exc
        if answer.status_code >= 400:
            reply(answer, service, lang)
        return answer

    async def healthy(self, service: Service) -> bool:
        try:
            answer = await self.client.get(self.base[service] + "/healthz", timeout=3.0)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200


def unavailable(service: Service, lang: str) -> ApiProblem:
    if lang == "vi":
        detail = f"Dịch vụ {service} tạm thời không trả lời. Vui lòng thử lại sau."
    else:
        detail = f"The {service} service does not answer right now. Please try again later."
    return ApiProblem(503, detail, code="service_unavailable")


def reply(answer: httpx.Response, service: Service, lang: str) -> Reply:
    """The parsed answer, or `ApiProblem` with the API's own message for an error status."""
    body: Any
    try:
        body = answer.json() if answer.content else None
    except ValueError:
        body = answer.text
    if answer.status_code < 400:
        return Reply(answer.status_code, answer.headers, body)
    if answer.status_code >= 500:
        log.warning("%s answered %s: %s", service, answer.status_code, str(body)[:500])
    if not isinstance(body, dict):
        raise (
            unavailable(service, lang)
            if answer.status_code >= 500
            else ApiProblem(answer.status_code, str(body)[:300] or answer.reason_phrase)
        )
    errors = body.get("errors")
    raise ApiProblem(
        status=answer.status_code,
        detail=str(body.get("detail") or body.get("title") or answer.reason_phrase),
        code=str(body.get("code") or "error"),
        title=str(body.get("title") or ""),
        errors=errors if isinstance(errors, list) else [],
        body=body,
    )
