"""FastAPI runs a plain-function endpoint or dependency in its thread pool: a thread hop (a
queue put, a wake-up, the GIL handed over twice) for each, on every request. Under load that
was an eighth of review's CPU. Every endpoint and dependency of every service is a coroutine."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.audit.app import create_app as audit_app
from services.intake.app import create_app as intake_app
from services.notify.app import create_app as notify_app
from services.portal.app import create_app as portal_app
from services.review.app import create_app as review_app

APPS: dict[str, Callable[[], FastAPI]] = {
    "intake": intake_app,
    "review": review_app,
    "notify": notify_app,
    "audit": audit_app,
    "portal": portal_app,
}


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (FastAPI 0.165 keeps them as such)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from _routes(list(router.routes))


def _calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _runs_in_a_thread(call: Any) -> bool:
    if inspect.isclass(call):
        return False  # a model or a class built from the request: FastAPI calls it in place
    if inspect.isfunction(call) or inspect.ismethod(call):
        return not inspect.iscoroutinefunction(call)
    return not inspect.iscoroutinefunction(getattr(call, "__call__", None))  # noqa: B004


@pytest.mark.parametrize("service", sorted(APPS))
def test_no_endpoint_or_dependency_hops_to_a_thread(service: str) -> None:
    app = APPS[service]()
    routes = list(_routes(list(app.routes)))
    assert routes
    sync = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', call)}"
            for route in routes
            for call in _calls(route.dependant)
            if _runs_in_a_thread(call)
        }
    )
    assert sync == []


def test_the_check_sees_a_plain_function() -> None:
    def plain() -> None: ...

    async def coroutine() -> None: ...

    assert _runs_in_a_thread(plain) and not _runs_in_a_thread(coroutine)
