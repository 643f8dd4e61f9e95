"""The portal as a process beside the four services: ready only when the services it calls are,
and serving its pages with their security headers."""

from __future__ import annotations

import httpx

from tests.e2e.harness import Services


def test_the_portal_is_ready_when_the_services_are(services: Services) -> None:
    services.start("portal")
    services.wait_ready("portal")
    ready = httpx.get(f"{services.url('portal')}/readyz", timeout=5).json()
    assert ready == {
        "status": "ready",
        "checks": {"intake": True, "review": True, "notify": True, "audit": True},
    }
    home = httpx.get(services.url("portal") + "/", timeout=5)
    assert home.status_code == 200
    assert "Content-Security-Policy" in home.headers

    services.kill("review")
    answer = httpx.get(f"{services.url('portal')}/readyz", timeout=10)
    assert answer.status_code == 503
    assert answer.json()["checks"]["review"] is False
