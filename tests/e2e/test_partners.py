"""Partners through notify's API, against real partners: HTTP servers on 127.0.0.1 that verify
with the off-the-shelf `standardwebhooks` package. One notify (two for the last test), its
clock moved forward by restarts (MOTCUA_NOTIFY_CLOCK_OFFSET_SECONDS) to cross a rotation's
overlap and five days of failures. Events are published straight onto the exchange."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared import auth
from shared.contracts import DossierSubmitted, Event
from shared.settings import SharedSettings
from tests.amqp import Observer, observe, publish_raw
from tests.conftest import Isolation, _infra, isolated
from tests.e2e.harness import Mailbox, Services, eventually, start_smtp
from tests.factories import approved_event, submitted_event
from tests.httpstub import HttpStub, Recorded, http_stub

pytestmark = pytest.mark.e2e

HOUR = 3600.0
OPERATORS_EMAIL = "ops@motcua.test"


@dataclass
class Stack:
    services: Services
    isolation: Isolation
    mailbox: Mailbox
    offset: float = 0.0  # notify's clock offset, seconds

    @property
    def url(self) -> str:
        return self.services.url("notify")

    def restart(self, offset: float, *, replicas: tuple[str, ...] = ("notify",)) -> None:
        """Notify again, its clock `offset` seconds ahead of the wall clock. Killed, not
        stopped: a crash loses nothing either, and a graceful stop takes seconds."""
        for name in [n for n in self.services.procs if n.startswith("notify")]:
            self.services.kill(name)
        self.offset = offset
        for name in replicas:
            self.services.start(name, MOTCUA_NOTIFY_CLOCK_OFFSET_SECONDS=str(offset))
        for name in replicas:
            self.services.wait_ready(name)

    def now(self) -> datetime:
        """Notify's now."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    controller, mailbox = start_smtp()
    with isolated(_infra()) as isolation:
        env = {
            **isolation.service_env(),
            "MOTCUA_NOTIFY_SMTP_PORT": str(mailbox.port),
            "MOTCUA_NOTIFY_ALLOW_LOOPBACK_ENDPOINTS": "true",
            "MOTCUA_NOTIFY_PARTNER_TRIES": "2",
            "MOTCUA_NOTIFY_PARTNER_RETRY_BASE_SECONDS": "0.2",
            "MOTCUA_NOTIFY_PARTNER_LEASE_SECONDS": "10",
            "MOTCUA_NOTIFY_PARTNER_ORDER_WINDOW_SECONDS": "0.3",
            "MOTCUA_NOTIFY_HTTP_TIMEOUT_SECONDS": "3",
            "MOTCUA_NOTIFY_OPERATORS_EMAIL": OPERATORS_EMAIL,
            "MOTCUA_RETRY_DELAY_SECONDS": "0.2",
            "MOTCUA_OUTBOX_INTERVAL_SECONDS": "0.5",
        }
        services = Services(env=env, logs=Path(tmp_path_factory.mktemp("partners")))
        try:
            services.start("notify")
            services.wait_ready("notify")
            yield Stack(services, isolation, mailbox)
        finally:
            services.stop_all()
            controller.stop()


def operator() -> dict[str, str]:
    shared = SharedSettings()
    bearer = auth.issue(
        auth.OfficerClaims("admin-01", "admin", "PC06"),
        secret=shared.jwt_secret.get_secret_value(),
        issuer=shared.jwt_issuer,
        ttl=timedelta(hours=200),  # notify's clock travels
    )
    return {"Authorization": f"Bearer {bearer}"}


def new_partner(stack: Stack, partner_id: str, *, scopes: list[str] | None = None) -> str:
    """A partner created by an operator; its API key."""
    body = {
        "id": partner_id,
        "name": "Cổng thông tin Hà Nội",
        "contact_email": f"{partner_id}@partner.test",
        "scopes": scopes or [],
    }
    created = httpx.post(f"{stack.url}/v1/partners", json=body, headers=operator(), timeout=10)
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"])


def key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_endpoint(stack: Stack, key: str, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": ["dossier.submitted"], **fields}
    created = httpx.post(
        f"{stack.url}/v1/partner/endpoints", json=body, headers=key_headers(key), timeout=10
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


def submitted(code: str, ward: str) -> DossierSubmitted:
    event = submitted_event(code=code)
    return event.model_copy(update={"data": event.data.model_copy(update={"ward_code": ward})})


async def publish(stack: Stack, *events: Event) -> None:
    for event in events:
        await publish_raw(stack.isolation.amqp_url, event.type, event.to_json())


def verified(secret: str, hook: Recorded) -> dict[str, Any]:
    return dict(Webhook(secret).verify(hook.body, hook.headers))


def codes(stub: HttpStub) -> list[tuple[str, str]]:
    return [(r.json()["type"], r.json()["subject"]) for r in stub.requests]


async def quiet(seconds: float = 1.0) -> None:
    """Let anything that should not come have its chance to arrive."""
    await asyncio.sleep(seconds)


def test_an_endpoint_on_a_private_address_or_bad_input_is_refused(stack: Stack) -> None:
    key = new_partner(stack, "refused")
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest", "ftp://127.0.0.1/x"):
        answer = httpx.post(
            f"{stack.url}/v1/partner/endpoints",
            json={"url": url, "event_types": ["dossier.submitted"]},
            headers=key_headers(key),
            timeout=10,
        )
        assert answer.status_code == 422, (url, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    bad = [
        {"url": "http://127.0.0.1:9/x", "event_types": ["notification.sent"]},
        {"url": "http://127.0.0.1:9/x", "event_types": ["dossier.submitted"], "units": ["a b"]},
        {"url": "http://127.0.0.1:9/x", "event_types": ["x"], "description": "a\x00b"},
    ]
    for body in bad:
        answer = httpx.post(
            f"{stack.url}/v1/partner/endpoints", json=body, headers=key_headers(key), timeout=10
        )
        assert answer.status_code == 422, (body, answer.text)
    listed = httpx.get(f"{stack.url}/v1/partner/endpoints", headers=key_headers(key), timeout=10)
    assert listed.json() == []  # nothing was stored
    for partner in ({"id": "bad id!", "name": "x"}, {"id": "ok", "name": "\x07"}):
        answer = httpx.post(
            f"{stack.url}/v1/partners",
            json={**partner, "contact_email": "a@b.vn"},
            headers=operator(),
            timeout=10,
        )
        assert answer.status_code == 422, answer.text
    assert httpx.get(f"{stack.url}/v1/partner", timeout=10).status_code == 401
    officer = auth.issue(
        auth.OfficerClaims("cb-01", "officer", "U"),
        secret=SharedSettings().jwt_secret.get_secret_value(),
        issuer=SharedSettings().jwt_issuer,
        ttl=timedelta(hours=1),
    )
    forbidden = httpx.get(
        f"{stack.url}/v1/partners", headers={"Authorization": f"Bearer {officer}"}, timeout=10
    )
    assert forbidden.status_code == 403
    # At most 20 endpoints a partner (every event reads them): the 21st is refused.
    many = new_partner(stack, "many")
    for n in range(20):
        new_endpoint(stack, many, f"http://127.0.0.1:9/hook-{n}", enabled=False)
    over = httpx.post(
        f"{stack.url}/v1/partner/endpoints",
        json={"url": "http://127.0.0.1:9/one-more", "event_types": ["dossier.submitted"]},
        headers=key_headers(many),
        timeout=10,
    )
    assert (over.status_code, over.json()["code"]) == (409, "too_many_endpoints")
    listed = httpx.get(f"{stack.url}/v1/partner/endpoints", headers=key_headers(many), timeout=10)
    assert len(listed.json()) == 20


async def test_a_partner_gets_exactly_its_types_and_units_and_no_personal_field(
    stack: Stack,
) -> None:
    with http_stub() as narrow_stub, http_stub() as wide_stub:
        narrow_key = new_partner(stack, "narrow")
        narrow = new_endpoint(
            stack,
            narrow_key,
            f"{narrow_stub.url}/hook",
            event_types=["dossier.submitted", "dossier.approved"],
            units=["W1", "U"],
            description="Phường 1 và đơn vị U",
        )
        wide_key = new_partner(stack, "wide", scopes=["personal_data"])
        wide = new_endpoint(stack, wide_key, f"{wide_stub.url}/hook")

        mine, other = submitted("G01.99-261202-0101", "W1"), submitted("G01.99-261202-0102", "W2")
        # Times a second apart: a factory's submission has microseconds, an approval only the
        # milliseconds that `utcnow` keeps, so the same millisecond could order them backwards.
        approved = approved_event(mine).model_copy(
            update={"time": mine.time + timedelta(seconds=1)}
        )
        await publish(stack, mine, other, approved)
        await narrow_stub.wait(2)
        await wide_stub.wait(2)
        await quiet()

        assert codes(narrow_stub) == [
            ("dossier.submitted", mine.subject),
            ("dossier.approved", mine.subject),
        ]
        assert sorted(codes(wide_stub)) == sorted(
            [("dossier.submitted", mine.subject), ("dossier.submitted", other.subject)]
        )
        applicant = mine.data.applicant
        for hook in narrow_stub.requests:  # the raw bytes: no personal field at all
            verified(narrow["secret"], hook)
            for personal in (applicant.personal_id, applicant.phone, applicant.full_name, "Huế"):
                assert personal.encode() not in hook.body
            assert b'"procedure_code":"1.004194"' in hook.body
        shown = verified(wide["secret"], wide_stub.requests[0])
        assert shown["data"]["applicant"]["phone"] == "+84912345678"  # the scope lets it through

    changes = httpx.get(f"{stack.url}/v1/partners/narrow/changes", headers=operator(), timeout=10)
    assert [(c["action"], c["by"]) for c in changes.json()] == [
        ("endpoint.created", "partner:narrow"),
        ("partner.created", "admin-01"),
    ]
    older = httpx.get(
        f"{stack.url}/v1/partners/narrow/changes",
        params={"before": changes.json()[0]["cursor"]},
        headers=operator(),
        timeout=10,
    )
    assert [c["action"] for c in older.json()] == ["partner.created"]
    seen = httpx.get(f"{stack.url}/v1/partners/narrow/endpoints", headers=operator(), timeout=10)
    assert [e["id"] for e in seen.json()] == [narrow["id"]]
    assert "secret" not in seen.json()[0]


async def attempts(stack: Stack, key: str, endpoint_id: str) -> list[dict[str, Any]]:
    page = httpx.get(
        f"{stack.url}/v1/partner/endpoints/{endpoint_id}/attempts",
        headers=key_headers(key),
        timeout=10,
    )
    assert page.status_code == 200, page.text
    return list(page.json()["attempts"])


async def test_recover_resends_the_failed_ones_once_each_at_the_rate_limit(stack: Stack) -> None:
    failing = ["G01.99-261202-0301", "G01.99-261202-0302"]
    with http_stub() as stub:
        for code in failing:
            stub.answer((503, {}), (503, {}), containing=code)  # both tries of each
        key = new_partner(stack, "recovering")
        endpoint = new_endpoint(stack, key, f"{stub.url}/hook", rate_limit_per_second=2)
        since = stack.now() - timedelta(minutes=1)
        await publish(stack, *(submitted(c, "W1") for c in [*failing, "G01.99-261202-0303"]))
        await stub.wait(5)  # 2 × 2 failed tries, 1 delivered
        await eventually(lambda: _count(stack, key, endpoint["id"], 5), timeout=10)  # all recorded

        too_old = httpx.post(
            f"{stack.url}/v1/partner/endpoints/{endpoint['id']}/recover",
            json={"since": (stack.now() - timedelta(days=15)).isoformat()},
            headers=key_headers(key),
            timeout=10,
        )
        assert too_old.status_code == 422, too_old.text
        recovered = httpx.post(
            f"{stack.url}/v1/partner/endpoints/{endpoint['id']}/recover",
            json={"since": since.isoformat()},
            headers=key_headers(key),
            timeout=10,
        )
        assert recovered.status_code == 202, recovered.text
        assert recovered.json() == {"messages": 2}
        await stub.wait(7)
        await quiet()
        again = stub.requests[5:]
        assert [r.json()["subject"] for r in again] == failing  # in order, once each
        assert again[1].at - again[0].at >= 0.45  # 2 a second
        first_tries = {r.json()["subject"]: r.headers["webhook-id"] for r in stub.requests[:5]}
        assert [r.headers["webhook-id"] for r in again] == [first_tries[c] for c in failing]

        # Resend one attempt's message: the delivered one, again, once.
        log = await attempts(stack, key, endpoint["id"])
        delivered = next(a for a in log if a["dossier"] == "G01.99-261202-0303")
        assert delivered["status"] == 200 and delivered["latency_ms"] >= 0
        resent = httpx.post(
            f"{stack.url}/v1/partner/endpoints/{endpoint['id']}/messages/"
            f"{delivered['message_id']}/resend",
            headers=key_headers(key),
            timeout=10,
        )
        assert resent.status_code == 200, resent.text
        assert resent.json()["state"] == "delivered"
        assert len(stub.requests) == 8
        assert stub.requests[7].headers["webhook-id"] == delivered["webhook_id"]


async def _count(stack: Stack, key: str, endpoint_id: str, count: int) -> bool:
    return len(await attempts(stack, key, endpoint_id)) >= count


def disabled(observer: Observer, endpoint_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in observer.events("partner.endpoint_disabled")
        if e["data"]["endpoint_id"] == endpoint_id
    ]


def told(mailbox: Mailbox, endpoint_id: str) -> list[str]:
    return sorted(str(m["To"]) for m in mailbox.messages if endpoint_id in str(m["Subject"]))


def read(stack: Stack, key: str, endpoint_id: str) -> dict[str, Any]:
    found = httpx.get(
        f"{stack.url}/v1/partner/endpoints/{endpoint_id}", headers=key_headers(key), timeout=10
    )
    return dict(found.json())


async def test_a_410_disables_at_once(stack: Stack) -> None:
    with http_stub((410, {})) as stub:
        key = new_partner(stack, "gone")
        endpoint = new_endpoint(stack, key, f"{stub.url}/hook")
        async with observe(stack.isolation.amqp_url) as observer:
            await publish(stack, submitted("G01.99-261202-0401", "W1"))
            await stub.wait(1)
            await eventually(lambda: disabled(observer, endpoint["id"]), timeout=15)
            await publish(stack, submitted("G01.99-261202-0402", "W1"))
            await quiet()
        assert len(stub.requests) == 1  # no retry, nothing after
        [event] = disabled(observer, endpoint["id"])
        assert event["data"]["reason"] == "gone" and event["data"]["last_status"] == 410
        shown = read(stack, key, endpoint["id"])
        assert (shown["enabled"], shown["disabled_reason"]) == (False, "gone")
        await eventually(lambda: len(told(stack.mailbox, endpoint["id"])) == 2, timeout=15)


def only(stack: Stack, *partners: str) -> None:
    """Delete every other partner: their endpoints' stubs are gone, and five days of failures
    would disable them too."""
    listed = httpx.get(f"{stack.url}/v1/partners", headers=operator(), timeout=10).json()
    for partner in listed:
        if partner["id"] not in partners:
            gone = httpx.delete(
                f"{stack.url}/v1/partners/{partner['id']}", headers=operator(), timeout=10
            )
            assert gone.status_code == 204, gone.text


async def test_a_day_later_only_the_new_secret_signs_and_five_days_of_failures_disable_once(
    stack: Stack,
) -> None:
    """One trip of notify's clock for both: a rotation's 24 h overlap ends; an endpoint that
    answered 503 since is disabled, once, by one of two replicas, with one operational event."""
    with http_stub() as rotating, http_stub((503, {})) as failing_stub:
        only(stack)
        key = new_partner(stack, "rotating")
        created = new_endpoint(stack, key, f"{rotating.url}/hook", units=["W1"])
        old = created["secret"]
        rotated = httpx.post(
            f"{stack.url}/v1/partner/endpoints/{created['id']}/rotate",
            headers=key_headers(key),
            timeout=10,
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != old
        assert "secret" not in read(stack, key, created["id"])  # shown once

        failing_key = new_partner(stack, "failing")
        failing = new_endpoint(stack, failing_key, f"{failing_stub.url}/hook", units=["W5"])

        await publish(stack, submitted("G01.99-261202-0201", "W1"))
        [during] = await rotating.wait(1)
        verified(old, during)
        verified(new, during)
        assert len(during.headers["webhook-signature"].split()) == 2

        await publish(stack, submitted("G01.99-261202-0501", "W5"))
        await failing_stub.wait(2)  # both tries failed; the endpoint stays on
        await quiet(0.5)
        shown = read(stack, failing_key, failing["id"])
        assert shown["enabled"] is True and shown["failing_since"] is not None

        # Five days and an hour on, two replicas.
        stack.restart(5 * 24 * HOUR + HOUR, replicas=("notify", "notify#2"))
        async with observe(stack.isolation.amqp_url) as observer:
            await publish(
                stack,
                submitted("G01.99-261202-0202", "W1"),
                submitted("G01.99-261202-0502", "W5"),
                submitted("G01.99-261202-0503", "W5"),
            )
            after = (await rotating.wait(2))[1]
            verified(new, after)
            with pytest.raises(WebhookVerificationError):
                verified(old, after)

            await eventually(lambda: disabled(observer, failing["id"]), timeout=15)
            await quiet(1.0)
        [event] = disabled(observer, failing["id"])
        assert event["data"]["reason"] == "failing"
        assert len(failing_stub.requests) == 3  # one more try, then nothing
        shown = read(stack, failing_key, failing["id"])
        assert (shown["enabled"], shown["disabled_reason"]) == (False, "failing")
        await eventually(
            lambda: (
                told(stack.mailbox, failing["id"])
                == sorted([OPERATORS_EMAIL, "failing@partner.test"])
            ),
            timeout=15,
        )
        total = 0.0
        for name in ("notify", "notify#2"):
            page = httpx.get(f"{stack.services.url(name)}/metrics", timeout=10).text
            for line in page.splitlines():
                if line.startswith('motcua_partner_endpoints_disabled_total{reason="failing"}'):
                    total += float(line.split()[-1])
        assert total == 1.0
