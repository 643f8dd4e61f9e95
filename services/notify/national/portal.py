"""The national portal's HTTP adapter: login, a kept session token, one call per operation
(the envelope and every name: fields.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.notify.national import fields
from services.notify.national.fields import Kind
from services.notify.national.metrics import REQUESTS


class PortalError(Exception):
    """The call did not go through; the operation stays queued and is tried again."""


class Exists(Exception):
    """The portal already knows the dossier (an add is then sent as an update)."""


class Portal:
    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        username: str,
        password: str,
        *,
        unit_code: str = "",
        auth_path: str = fields.LOGIN_PATH,
        integration_path: str = fields.INTEGRATION_PATH,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.unit_code = unit_code
        self.auth_path = auth_path
        self.integration_path = integration_path
        self.token: str | None = None
        self._login = asyncio.Lock()

    async def fresh(self, stale: str | None) -> str:
        """A token other than `stale`: one login however many calls found it expired at once."""
        async with self._login:
            if self.token is not None and self.token != stale:
                return self.token
            return await self.login()

    async def login(self) -> str:
        try:
            response = await self.client.post(
                self.base_url + self.auth_path,
                json=fields.login_body(self.username, self.password),
            )
            answer = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            REQUESTS.labels("login", "failed").inc()
            raise PortalError(f"login: {exc!r}") from exc
        token = answer.get(fields.TOKEN) if isinstance(answer, dict) else None
        refused = fields.answer_code(answer) not in fields.OK_CODES
        if not isinstance(token, str) or not token or refused:
            REQUESTS.labels("login", "failed").inc()
            raise PortalError(f"login refused: HTTP {response.status_code}")
        REQUESTS.labels("login", "ok").inc()
        self.token = token
        return token

    async def send(self, kind: Kind, body: dict[str, Any]) -> None:
        """Send one operation; log in when there is no token, again once when it expired."""
        token = self.token or await self.fresh(None)
        for last in (False, True):
            answer, status = await self._call(kind, body, token)
            code = fields.answer_code(answer)
            expired = status == 401 or code == fields.EXPIRED_CODE
            if expired and not last:
                token = await self.fresh(token)
                continue
            if kind == "add" and fields.says_exists(answer):
                REQUESTS.labels(kind, "ok").inc()
                raise Exists(body.get("MaHoSo"))
            if code in fields.OK_CODES and status == 200:
                REQUESTS.labels(kind, "ok").inc()
                return
            REQUESTS.labels(kind, "failed").inc()
            said = str(answer.get(fields.MESSAGE, ""))[:200] if isinstance(answer, dict) else ""
            raise PortalError(
                f"{kind}: HTTP {status}, {fields.ANSWER_CODE}={code or '-'}"
                + (f": {said}" if said else "")
            )

    async def _call(self, kind: Kind, body: dict[str, Any], token: str) -> tuple[Any, int]:
        try:
            response = await self.client.post(
                self.base_url + self.integration_path,
                json=fields.envelope(kind, token, self.unit_code, body),
            )
        except httpx.HTTPError as exc:
            REQUESTS.labels(kind, "failed").inc()
            raise PortalError(f"{kind}: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        return answer, response.status_code
