"""Fixtures of the browser tests: one Chromium for the session (Debian's, no download), a fresh
context per page with the Vietnamese locale and Hà Nội's time zone, on a cheap phone or an
officer's desk screen, and the stack the pages are served by (the four services and the portal,
each a process, on the test's own vhost and databases).

A failed test keeps, under .run/browser/failures/<test>/, each open page's HTML and screenshot
and the services' logs, and shows the start of them in its report."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.checks import SCREENSHOTS, Checker, Console
from tests.browser.stacks import ConsoleStack, Stack, console_stack
from tests.conftest import Infra
from tools.devstack import ROOT

CHROMIUM = "/usr/bin/chromium"
FAILURES = ROOT / ".run" / "browser" / "failures"
TIMEOUT_MS = 20_000
"""Every Playwright action and wait (navigation included) fails after this long."""

Screen = Literal["phone", "desk"]
SCREENS: dict[str, dict[str, Any]] = {
    # A cheap Android phone: 360×740 CSS pixels, touch.
    "phone": {
        "viewport": {"width": 360, "height": 740},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
    # The one-stop office's desk screen.
    "desk": {"viewport": {"width": 1366, "height": 768}},
}

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report, so a fixture's teardown knows whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], timeout=60_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


class Browsing:
    """The pages a test opens, each in a context of its own (its own cookies: one officer)."""

    def __init__(self, browser: Browser, checker: Checker) -> None:
        self.browser = browser
        self.checker = checker
        self.contexts: list[BrowserContext] = []
        self.pages: list[tuple[str, Page, Console]] = []

    async def page(self, screen: Screen = "desk", name: str = "") -> Page:
        context = await self.browser.new_context(
            locale="vi-VN",
            timezone_id="Asia/Ho_Chi_Minh",
            accept_downloads=True,
            **SCREENS[screen],
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = await context.new_page()
        self.pages.append((name or f"page{len(self.pages) + 1}", page, Console(page)))
        return page

    def console(self, page: Page) -> Console:
        return next(c for _, p, c in self.pages if p is page)

    def csp_violations(self) -> list[str]:
        return [f"{name}: {m}" for name, _, c in self.pages for m in c.csp_violations()]

    async def keep(self, folder: Path) -> list[tuple[str, str]]:
        """Each page's HTML and screenshot into `folder`; (title, start of text) to report."""
        folder.mkdir(parents=True, exist_ok=True)
        shown: list[tuple[str, str]] = []
        for name, page, console in self.pages:
            if page.is_closed():
                continue
            try:
                html = await page.content()
                await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
            except Exception as exc:  # the page may be what broke
                html = f"(could not read the page: {exc})"
            (folder / f"{name}.html").write_text(html, encoding="utf-8")
            log = "\n".join(console.messages + console.errors)
            shown.append((f"page {name} at {page.url}", html[:6000]))
            if log:
                shown.append((f"console of {name}", log[-3000:]))
        return shown

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


def _test_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")


@pytest.fixture
def checker(request: pytest.FixtureRequest) -> Checker:
    """Screenshots and axe-core for this test (its screenshots of an earlier run removed)."""
    name = _test_name(request)
    shutil.rmtree(SCREENSHOTS / name, ignore_errors=True)
    shutil.rmtree(FAILURES / name, ignore_errors=True)
    return Checker(name)


@pytest_asyncio.fixture(loop_scope="session")
async def browsing(
    browser: Browser, checker: Checker, request: pytest.FixtureRequest
) -> AsyncIterator[Browsing]:
    """Open pages with `await browsing.page("phone")`; at the end no page may have broken
    the Content-Security-Policy (a violation shows in the console)."""
    opened = Browsing(browser, checker)
    try:
        yield opened
    finally:
        reports = request.node.stash.get(_REPORTS, {})
        call = reports.get("call")
        if call is not None and call.failed:
            folder = FAILURES / _test_name(request)
            for title, text in await opened.keep(folder):
                call.sections.append((title, text))
            for stack in _stacks(request):
                call.sections.extend(stack.attach(folder))
        violations = opened.csp_violations()
        await opened.close()
    assert not violations, "the Content-Security-Policy was broken:\n" + "\n".join(violations)


def _stacks(request: pytest.FixtureRequest) -> list[Stack]:
    return [
        value
        for value in getattr(request.node, "funcargs", {}).values()
        if isinstance(value, Stack)
    ]


@pytest.fixture(scope="package")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """The OpenID Connect provider, the four services and the portal, shared by the browser
    tests (started once, stopped after the last of them)."""
    with console_stack(infra, tmp_path_factory.mktemp("stack")) as running:
        yield running
