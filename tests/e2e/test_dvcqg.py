"""The national-portal sync against a loopback stand-in for the portal, with two notify replicas:
every request's path, fields and date format; add → update → progress in order per dossier with
the mapped codes; an add of a known dossier becomes an update; an expired token means one login
again; the portal down for a while and back: every dossier ends in sync, nothing sent twice."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.notify.national import fields
from shared.contracts import DossierSubmitted, Event
from tests.conftest import Isolation
from tests.e2e.harness import Services, eventually
from tests.e2e.test_notify_channels import bearer, publish
from tests.factories import approved_event, submitted_event

pytestmark = pytest.mark.e2e
DATE = re.compile(r"^\d{14}$")


@dataclass
class StandIn:
    """The portal as the adapter assumes it (services/notify/national/fields.py)."""

    known: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    accepted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    logins: int = 0
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if self.down:
                return 503, {}
            if path == fields.LOGIN_PATH:
                assert body == {"username": "motcua", "password": "s3cret"}
                self.logins += 1
                self.tokens.add(f"t{self.logins}")
                return 200, {fields.TOKEN: f"t{self.logins}", fields.ANSWER_CODE: 0}
            assert path == fields.INTEGRATION_PATH, path
            if body.get(fields.TOKEN) not in self.tokens:
                return 200, {fields.ANSWER_CODE: fields.EXPIRED_CODE, fields.MESSAGE: "Hết phiên"}
            assert body["madonvi"] == "000.00.01.H26"
            (item,) = body["data"]  # one dossier or one step a call
            kind = fields.kind_of(body)
            code = item["MaHoSo"]
            if kind == "add" and code in self.known:
                return 200, {fields.ANSWER_CODE: "-3", fields.MESSAGE: f"Hồ sơ {code} đã tồn tại"}
            if kind != "add" and code not in self.known:
                return 200, {fields.ANSWER_CODE: "-1", fields.MESSAGE: "Không tìm thấy hồ sơ"}
            self.known.add(code)
            self.accepted.append((kind, item))
            return 200, {fields.ANSWER_CODE: "0", fields.MESSAGE: "Thành công"}

    def of(self, code: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [(k, b) for k, b in self.accepted if b["MaHoSo"] == code]


@pytest.fixture
def stand_in() -> Iterator[tuple[StandIn, str]]:
    portal = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, answer = portal.answer(self.path, json.loads(raw or b"{}"))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield portal, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def approved(event: DossierSubmitted) -> Event:
    """The dossier's approval, a minute after its submission (the factory's own time can fall
    within the same millisecond, before it: the sync orders by when events happened)."""
    return approved_event(event).model_copy(update={"time": event.time + timedelta(minutes=1)})


def state(stack: Services, code: str, replica: str = "notify") -> dict[str, Any]:
    response = httpx.get(
        f"{stack.url(replica)}/v1/dvcqg/dossiers/{code}", headers=bearer("officer")
    )
    return dict(response.json()) if response.status_code == 200 else {}


async def test_dossiers_reach_the_portal_in_order_through_an_outage_with_two_replicas(
    isolation: Isolation, stand_in: tuple[StandIn, str], tmp_path: Path
) -> None:
    portal, url = stand_in
    env = {
        **isolation.service_env(),
        "MOTCUA_NOTIFY_DVCQG_ENABLED": "true",
        "MOTCUA_NOTIFY_DVCQG_BASE_URL": url,
        "MOTCUA_NOTIFY_DVCQG_USERNAME": "motcua",
        "MOTCUA_NOTIFY_DVCQG_UNIT_CODE": "000.00.01.H26",
        "MOTCUA_NOTIFY_DVCQG_PASSWORD": "s3cret",
        "MOTCUA_NOTIFY_DVCQG_RETRY_BASE_SECONDS": "0.2",
        "MOTCUA_NOTIFY_DVCQG_RETRY_MAX_SECONDS": "1",
        "MOTCUA_NOTIFY_DVCQG_TIMEOUT_SECONDS": "3",
        "MOTCUA_RETRY_DELAY_SECONDS": "0.2",
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start("notify")
        stack.start("notify#2")
        stack.wait_ready("notify")
        stack.wait_ready("notify#2")

        # One dossier the portal knows already: its add comes back "exists" and goes as update.
        portal.known.add("G01.99-261201-0100")
        firsts = [submitted_event(f"G01.99-261201-{n:04d}") for n in range(100, 106)]
        for event in firsts:
            await publish(isolation, event, approved(event))
            await publish(isolation, event)  # a redelivered copy: queued once

        async def synced(codes: list[str]) -> bool:
            return all(state(stack, c).get("state") == "in_sync" for c in codes)

        await eventually(lambda: synced([e.subject for e in firsts]), timeout=30)

        # The tokens expire: each replica logs in again, once, then the call goes through.
        logins = portal.logins
        portal.tokens.clear()
        # The portal goes down: what arrives meanwhile waits, then goes when it is back.
        more = [submitted_event(f"G01.99-261201-{n:04d}") for n in range(200, 204)]
        for event in more[:2]:
            await publish(isolation, event)
        await eventually(lambda: synced([e.subject for e in more[:2]]), timeout=30)
        assert logins <= 2 and 1 <= portal.logins - logins <= 2  # once per replica at most
        portal.down = True
        for event in more:
            await publish(isolation, approved(event))
        for event in more[2:]:
            await publish(isolation, event)

        async def failing() -> bool:
            return all(state(stack, e.subject).get("last_error") for e in more)

        await eventually(failing, timeout=30)
        assert state(stack, more[0].subject, "notify#2")["pending"]
        portal.down = False
        await eventually(lambda: synced([e.subject for e in firsts + more]), timeout=30)

        for event in firsts + more:
            sent = portal.of(event.subject)
            kinds = [k for k, _ in sent]
            expected = ["add", "update", "progress"]
            if event.subject == "G01.99-261201-0100":
                expected = ["update", "update", "progress"]  # the add answered "exists"
            assert kinds == expected, (event.subject, kinds)
            add, update, progress = (b for _, b in sent)
            assert add["TrangThaiHoSo"] == "1" and add["MaTTHC"] == "1.004194"
            assert add["KenhThucHien"] == "2" and DATE.match(add["NgayTiepNhan"])
            assert update["TrangThaiHoSo"] == "9"  # DECIDED, as deploy/dvcqg-status.yaml maps it
            assert progress["NguoiXuLy"] == "cb-01" and DATE.match(progress["ThoiDiemXuLy"])
            assert progress["TrangThai"] == "9"

        metrics = "".join(httpx.get(f"{stack.url(n)}/metrics").text for n in ("notify", "notify#2"))
        assert 'motcua_dvcqg_requests_total{operation="add",outcome="failed"}' in metrics
        assert 'motcua_dvcqg_requests_total{operation="login",outcome="ok"}' in metrics
        assert "motcua_dvcqg_backlog 0.0" in metrics
        assert "motcua_dvcqg_last_success_timestamp_seconds" in metrics
    finally:
        stack.stop_all()
