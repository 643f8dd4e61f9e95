"""Citizens' journeys in Chromium (Playwright, Debian's /usr/bin/chromium) on a cheap phone's
screen, over the four services and the portal: a temporary-residence dossier filed with two
photographed documents with JavaScript off, then on; a form submitted while the browser is
offline sent once when it comes back online, the receipt shown; under an emulated slow network
(250 kbit/s down, 50 up, 400 ms round trip) the status page readable within 3 s, each page's
compressed size printed and checked against its budget; axe-core on every citizen page, with a
screenshot of each.

The fixtures are this module's own until the `browser` engineer's tests/browser/conftest.py is
on main (then `browsing`, `checker` and a stack without the OpenID provider can replace them)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page

from tests.conftest import Infra, isolated
from tests.e2e.flows import SAMPLES, act, assigned_officer, token
from tests.e2e.harness import Services, eventually, start_smtp
from tools.devstack import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "tools" / "node" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / ".run" / "browser" / "screenshots" / "citizen"
PHONE: dict[str, Any] = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "vi-VN",
    "timezone_id": "Asia/Ho_Chi_Minh",
}
SLOW = {
    "offline": False,
    "latency": 400,
    "downloadThroughput": 250_000 / 8,
    "uploadThroughput": 50_000 / 8,
}
BUDGETS = {"status": 14 * 1024, "form": 50 * 1024}
APPLY = "/procedures/1.004194/apply"
FORM = {
    "applicant.full_name": "Nguyễn Thị Ánh Tuyết",
    "applicant.date_of_birth": "1990-05-17",
    "applicant.personal_id": "001190012345",
    "applicant.phone": "0912345678",
    "residence.ward_code": "00070",
    "residence.address": "Số 12 phố Hàng Gai",
}


@pytest.fixture(scope="module")
def citizen_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The four services and the portal, on this module's own vhost and databases."""
    controller, box = start_smtp()
    with isolated(infra) as isolation:
        env = {
            **isolation.service_env(),
            "MOTCUA_NOTIFY_SMTP_PORT": str(box.port),
            "MOTCUA_OUTBOX_INTERVAL_SECONDS": "0.5",
            "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "1000000",
            "MOTCUA_INTAKE_RATE_LIMIT_BURST": "1000000",
        }
        stack = Services(env=env, logs=tmp_path_factory.mktemp("citizen-logs"))
        try:
            stack.start_all()
            stack.start("portal")
            stack.wait_ready("portal")
            yield stack
        finally:
            stack.stop_all()
            controller.stop()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def chromium(browser: Browser) -> AsyncIterator[Browser]:
    """The browser tests' one Chromium (tests/browser/conftest.py), on their one event loop:
    a second Playwright on another loop left this module's uploads hanging after them."""
    yield browser


async def phone(browser: Browser, *, javascript: bool = True) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(java_script_enabled=javascript, **PHONE)
    context.set_default_timeout(20_000)
    return context, await context.new_page()


async def checked(page: Page, name: str, *, axe: bool = True) -> None:
    """A screenshot of the page kept; axe-core finds no serious or critical violation."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if not axe:
        return
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await window.axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})).violations.map(
            v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"""
    )
    blocking = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not blocking, f"{name}: {blocking}"


def photos(tmp: Path) -> dict[str, Path]:
    """Two documents as a phone's camera gives them (JPEG), and a PDF."""
    ct01 = tmp / "ct01.jpg"
    ct01.write_bytes(SAMPLES["image/jpeg"])
    proof = tmp / "hop-dong.jpg"
    proof.write_bytes(SAMPLES["image/jpeg"] + b" another")
    return {"ct01": ct01, "legal_residence_proof": proof}


async def fill(page: Page, tmp: Path) -> None:
    for name, value in FORM.items():
        await page.fill(f'[name="{name}"]', value)
    await page.select_option('[name="applicant.sex"]', "female")
    for doc, path in photos(tmp).items():
        await page.set_input_files(f'[name="file.{doc}"]', str(path))
    await uploaded(page)


async def uploaded(page: Page) -> None:
    """Each picked file uploaded, when the resumable uploads (tus) run on the page."""
    try:
        await page.wait_for_function(
            """() => !window.tus || [...document.querySelectorAll('input[type=file][data-tus]')]
                .every(i => !i.files.length || i.dataset.tusAttachments)""",
            timeout=60_000,  # resized, content-checked and stored by intake: slow on a busy CI
        )
    except Exception as exc:  # say where each upload stands, to find out why
        rows = await page.evaluate(
            "() => [...document.querySelectorAll('.field')].map(f => f.innerText).join(' | ')"
        )
        raise AssertionError(f"uploads not done: {rows}") from exc


def receipt_code(url: str) -> str:
    found = re.search(r"/receipts/([^/?#]+)$", url)
    assert found, url
    return found.group(1)


async def file_with(page: Page, base: str, tmp: Path, name: str) -> str:
    await page.goto(base + "/")
    await checked(page, f"{name}-home", axe=False)
    await page.click("text=Danh mục thủ tục")
    await page.click("text=Đăng ký tạm trú")
    await checked(page, f"{name}-procedure", axe=False)
    await page.click("text=Nộp hồ sơ trực tuyến")
    await fill(page, tmp)
    await checked(page, f"{name}-form", axe=False)
    await page.click("button.submit")
    await page.wait_for_url(re.compile(r"/receipts/"))
    return receipt_code(page.url)


async def test_a_citizen_files_with_javascript_off_then_on(
    citizen_stack: Services, chromium: Browser, tmp_path: Path
) -> None:
    base = citizen_stack.url("portal")
    context, page = await phone(chromium, javascript=False)
    code = await file_with(page, base, tmp_path, "nojs")
    await checked(page, "nojs-receipt", axe=False)
    assert await page.locator("dd.code").inner_text() == code
    assert await page.locator("svg.qr").count() == 1
    status_link = await page.locator("figcaption a").get_attribute("href")
    assert status_link and "secret=" in status_link
    await context.close()

    context, page = await phone(chromium)
    # Refused with JavaScript: the page intake's errors make, beside the field, in Vietnamese.
    await page.goto(base + APPLY)
    await fill(page, tmp_path)
    await page.fill('[name="applicant.phone"]', "0123")
    await page.click("button.submit")
    error = page.locator("#f-applicant-phone-error")
    await error.wait_for()
    assert "di động" in await error.inner_text()
    await checked(page, "js-refused")
    second = await file_with(page, base, tmp_path, "js")
    assert second != code
    assert int(second[-4:]) == int(code[-4:]) + 1, "one dossier per form"
    await checked(page, "js-receipt")

    # The receipt's QR link after the officer receives the dossier: "Được tiếp nhận".
    task_id, officer_id = await assigned_officer(citizen_stack, code)
    assert act(citizen_stack, task_id, token(officer_id), "receive").status_code == 200

    async def received() -> bool:
        await page.goto(status_link)
        return await page.locator("dd.status-now").inner_text() == "Được tiếp nhận"

    await eventually(received, timeout=30)
    await checked(page, "status")
    for path, name in (
        ("/", "home"),
        ("/procedures", "catalogue"),
        (APPLY, "form"),
        ("/status", "find"),
        ("/procedures/1.004194", "procedure"),
    ):
        await page.goto(base + path)
        await checked(page, f"axe-{name}")
    path, query = status_link.split("?", 1)
    await page.goto(f"{path}/withdraw?{query}")
    await checked(page, "withdraw")
    await context.close()


async def test_a_form_submitted_offline_is_sent_once_back_online(
    citizen_stack: Services, chromium: Browser, tmp_path: Path
) -> None:
    base = citizen_stack.url("portal")
    context, page = await phone(chromium)
    await page.goto(base + APPLY)
    await page.evaluate("async () => { await navigator.serviceWorker.ready; }")
    before = await _next_number(citizen_stack, page, base, tmp_path)
    await page.goto(base + APPLY)
    await fill(page, tmp_path)
    await context.set_offline(True)
    await page.click("button.submit")
    waiting = page.locator(".outbox-state")
    await waiting.wait_for(state="visible")
    assert "Đang chờ mạng để gửi…" in await waiting.inner_text()
    await checked(page, "offline-waiting")
    await page.wait_for_timeout(1500)
    assert "/receipts/" not in page.url
    await context.set_offline(False)
    await page.wait_for_url(re.compile(r"/receipts/"), timeout=45_000)
    code = receipt_code(page.url)
    assert int(code[-4:]) == before + 1
    await checked(page, "offline-receipt")
    # Sent once: the next form is the very next number.
    after = await _next_number(citizen_stack, page, base, tmp_path)
    assert after == before + 2, "the outbox filed one dossier"
    await context.close()


async def _next_number(stack: Services, page: Page, base: str, tmp: Path) -> int:
    """The number of a dossier filed now (the day's counter)."""
    await page.goto(base + APPLY)
    await fill(page, tmp)
    await page.click("button.submit")
    await page.wait_for_url(re.compile(r"/receipts/"))
    return int(receipt_code(page.url)[-4:])


class Wire:
    """Each response's size as Chromium received it (DevTools: the encoded bytes, headers
    included), on an emulated slow network."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    async def attach(self, context: BrowserContext, page: Page) -> None:
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.emulateNetworkConditions", SLOW)
        cdp.on("Network.responseReceived", self._received)
        cdp.on("Network.loadingFinished", self._finished)

    def _received(self, event: dict[str, Any]) -> None:
        url = event["response"]["url"]
        if url.startswith("http"):  # not the browser's own data: icons
            self.urls[event["requestId"]] = url

    def _finished(self, event: dict[str, Any]) -> None:
        url = self.urls.get(event["requestId"])
        if url:
            self.sizes[url] = int(event["encodedDataLength"])

    def of(self, fragment: str) -> int:
        return max(size for url, size in self.sizes.items() if fragment in url)


async def test_on_a_slow_network_the_pages_fit_and_the_status_is_readable_within_3_s(
    citizen_stack: Services, chromium: Browser, tmp_path: Path
) -> None:
    base = citizen_stack.url("portal")
    wire = Wire()
    context, page = await phone(chromium)
    await wire.attach(context, page)
    code = await file_with(page, base, tmp_path, "slow")
    link = await page.locator("figcaption a").get_attribute("href")
    assert link
    await context.close()

    fresh, slow = await phone(chromium)
    await wire.attach(fresh, slow)
    started = time.monotonic()
    await slow.goto(link, wait_until="domcontentloaded")
    await slow.locator("dd.status-now").wait_for()
    took = time.monotonic() - started
    await checked(slow, "slow-status")
    await fresh.close()
    whole = Wire()
    blank, form = await phone(chromium)
    await whole.attach(blank, form)
    await form.goto(base + APPLY, wait_until="load")
    await blank.close()
    form_total = sum(whole.sizes.values())
    print(f"{form_total:>6} bytes compressed  {APPLY} with its styles and scripts, first visit")
    for url, size in wire.sizes.items():
        print(f"{size:>6} bytes compressed  {url.removeprefix(base)}")
    print(f"status page of {code} readable in {took:.2f} s on 250/50 kbit/s, 400 ms RTT")
    assert wire.of("/status/") <= BUDGETS["status"]
    assert wire.of(APPLY) < BUDGETS["form"]
    assert form_total < BUDGETS["form"]
    assert took < 3.0
