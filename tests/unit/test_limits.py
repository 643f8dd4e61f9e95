from datetime import timedelta
from typing import Any

import httpx

from shared.limits import RateLimiter, rate_limited


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_waits_for_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == 1.0  # one token a second
    assert limiter.take("b") == 0  # another client has its own bucket
    clock.now += 1.0
    assert limiter.take("a") == 0
    clock.now += 3600
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]  # refills up to the burst only
    assert limiter.take("a") > 0


def test_memory_is_bounded_by_forgetting_the_oldest_clients() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=FakeClock(), max_clients=100)
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter.buckets) == 100


def _app_with_limit() -> Any:
    from fastapi import Depends, FastAPI

    from shared import problems
    from shared.auth import OfficerClaims, issue, verifier_for
    from shared.settings import SharedSettings
    from shared.web import state_of

    settings = SharedSettings()
    app = FastAPI()
    problems.install(app)
    app.state.verifier = verifier_for(settings)
    app.state.limiter = RateLimiter(per_minute=1, burst=2)
    limited = Depends(rate_limited(state_of("limiter", RateLimiter)))
    app.get("/limited", dependencies=[limited])(_ok)

    def token(officer: str) -> str:
        return issue(
            OfficerClaims(officer, "officer", "u-1"),
            secret=settings.jwt_secret.get_secret_value(),
            issuer=settings.jwt_issuer,
            ttl=timedelta(minutes=5),
        )

    return app, token


async def _ok() -> dict[str, str]:
    return {"ok": "yes"}


async def test_officers_behind_one_address_each_have_their_own_rate() -> None:
    app, token = _app_with_limit()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        for officer in ("cb-1", "cb-2"):  # the portal's one address, two desks
            bearer = {"Authorization": f"Bearer {token(officer)}"}
            answers = [await client.get("/limited", headers=bearer) for _ in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 429]
        # A forged token is counted by address, like any anonymous client.
        forged = {"Authorization": "Bearer not-a-token"}
        answers = [await client.get("/limited", headers=forged) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert (await client.get("/limited")).status_code == 429  # the same address
