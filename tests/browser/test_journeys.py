"""The officers' journeys of issue 11, in Chromium, against the four services and the portal
behind the real OpenID Connect provider: every page they visit passes axe-core and is kept as a
screenshot. Each journey waits (skipped, saying for what) until the console's piece it goes
through is on this branch."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import FilePayload, Locator, Page, Route, expect

from shared.calendar import VIETNAM, WorkingCalendar
from tests.browser.checks import Checker, assert_keyboard_usable
from tests.browser.conftest import Browsing
from tests.browser.dossiers import (
    APPLICANT,
    EMAIL,
    Filed,
    file_online,
    mail_with_subject,
    needs,
    pdf_document,
    pdf_text,
    png_document,
)
from tests.browser.officers import sign_in
from tests.browser.stacks import ConsoleStack, console_stack
from tests.conftest import Infra
from tools.devstack import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

QUEUES = ("services/portal/queues.py", "pages")
DOSSIER_PAGE = ("services/portal/dossier.py", "pages")
REVIEW_STAGES = ("services/review/stages.py", "consoleapi")
OFFICER_DOCUMENTS = ("services/intake/officer_api.py", "consoleapi")
DESK = ("services/portal/desk.py", "desk")
PRINTS = ("services/portal/prints.py", "desk")
SLIPS = ("services/portal/printing/__init__.py", "slips")

OFFICER, CHIEF = "cb-hoankiem-01", "cb-hoankiem-tp"  # Đỗ Minh Dũng, Vũ Thị Hà
OTHER_UNIT = "cb-badinh-01"  # Trần Văn An, Công an phường Ba Đình
DESK_OFFICER = "cb-badinh-02"  # Lê Thị Bình
RED = "rgb(179, 38, 30)"  # --late in portal.css
RECEPTION_SLA = "receiving:  {status_code: 1, sla: {working_hours: 8}"
SHORT_RECEPTION = "receiving:  {status_code: 1, sla: {working_hours: 0.003}"
"""The late stack's two-level workflow: receipt due 10.8 working seconds after assignment, on
a clock shifted to a working Monday morning (as tests/e2e/test_review.py makes a step late)."""


async def row_in_queue(page: Page, code: str, timeout: float = 45) -> Locator:
    """The queue's row of dossier `code`, reloading while review has not assigned it yet."""
    deadline = time.monotonic() + timeout
    while True:
        row = page.locator(f'tr[data-code="{code}"]')
        if await row.count() == 1:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"{code} not in the queue at {page.url} in {timeout}s")
        await asyncio.sleep(0.5)
        await page.reload()


async def filed_in_queue(
    browsing: Browsing, stack: ConsoleStack, tab: str
) -> tuple[Filed, Page, Locator]:
    """A dossier filed online now, and its row in the officer's queue `tab`."""
    filed = file_online(stack)
    page = await browsing.page("desk", "officer")
    await sign_in(page, stack, OFFICER, f"/queues?tab={tab}")
    return filed, page, await row_in_queue(page, filed.code)


async def open_row(page: Page, stack: ConsoleStack, row: Locator, code: str) -> str:
    """Follow the row's link to the dossier page; its path."""
    await row.get_by_role("link", name=code).click()
    await page.wait_for_url("**/dossiers/*")
    return page.url.removeprefix(stack.portal).split("?")[0]


async def press(button: Locator) -> None:
    """Press a button from the keyboard (focus, Enter). A mouse click can land in the PDF
    viewer instead: Chromium's viewer takes the focus and scrolls the page to itself when it
    has loaded, which may happen between Playwright's aim and its click."""
    await button.press("Enter")


async def act(page: Page, action: str, state: str) -> None:
    """Press the dossier page's button for `action`; the page comes back in `state`."""
    await press(page.locator(f"#action-{action} button[type=submit]"))
    await page.wait_for_url(re.compile(r"/dossiers/[^/?#]+\?done="))
    await expect(page.locator("#notice")).to_be_visible()
    await expect(page.locator("#dossier-state")).to_contain_text(state)


async def printed(page: Page, button: Locator) -> bytes:
    """Press a print button: its form opens the PDF in a new tab; the bytes the portal sent
    there (caught on the way: the PDF viewer consumes the answer, Playwright cannot read it)."""
    caught: list[tuple[int, str, bytes]] = []
    answered = asyncio.Event()

    async def keep(route: Route) -> None:
        answer = await route.fetch()
        caught.append((answer.status, answer.headers.get("content-type", ""), await answer.body()))
        answered.set()
        await route.fulfill(response=answer)

    await page.context.route("**/prints/**", keep)
    try:
        async with page.context.expect_page() as opened:
            await press(button)
        tab = await opened.value
        await tab.wait_for_load_state()
        await asyncio.wait_for(answered.wait(), timeout=30)
    finally:
        await page.context.unroute("**/prints/**", keep)
    status, media_type, pdf = caught[0]
    assert (status, media_type) == (200, "application/pdf"), pdf[:500]
    return pdf


@needs(QUEUES, DOSSIER_PAGE, REVIEW_STAGES, OFFICER_DOCUMENTS)
async def test_an_officer_receives_and_the_chief_approves_a_new_dossier(
    stack: ConsoleStack, browsing: Browsing, checker: Checker
) -> None:
    filed, page, row = await filed_in_queue(browsing, stack, "reception")
    assert APPLICANT in await row.inner_text()
    left = await row.locator(".deadline .left").inner_text()
    assert re.fullmatch(r"còn (\d+ ngày ?)?(\d+ giờ ?)?(\d+ phút)?", left), left
    assert "on_time" in (await row.get_attribute("class") or "")
    await checker.assert_accessible(page, "queue-reception")
    await assert_keyboard_usable(page)

    task_path = await open_row(page, stack, row, filed.code)
    assert filed.code in await page.locator("h1").inner_text()
    await expect(page.locator("#dossier-state")).to_contain_text("Chờ tiếp nhận")
    await view_both_documents(page, stack, filed)
    await checker.assert_accessible(page, "dossier-receiving")
    await assert_keyboard_usable(page)

    await act(page, "receive", "Đang thẩm định")
    await checker.assert_accessible(page, "dossier-checking")
    await act(page, "propose", "Chờ lãnh đạo phê duyệt")
    await expect(page.locator("#action-approve")).to_have_count(0)  # not the officer's to do
    await checker.assert_accessible(page, "dossier-approving-officer")

    chief = await browsing.page("desk", "chief")
    await sign_in(chief, stack, CHIEF, task_path)
    await checker.assert_accessible(chief, "dossier-approving-chief")
    await act(chief, "approve", "Đã có kết quả, chờ trả")
    await checker.assert_accessible(chief, "dossier-decided")
    history = await chief.locator("#history-table").inner_text()
    for step in ("Tiếp nhận hồ sơ", "Trình lãnh đạo phê duyệt", "Phê duyệt"):
        assert step in history, step

    mail = await mail_with_subject(stack, f"Hồ sơ {filed.code} đã được phê duyệt")
    assert mail["To"] == EMAIL
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and f"Kính gửi {APPLICANT}" in body.get_content()


async def view_both_documents(page: Page, stack: ConsoleStack, filed: Filed) -> None:
    """Both documents are on the dossier page: the image shown, the PDF in its viewer, each
    served by the portal with exactly the bytes the citizen uploaded."""
    figures = page.locator("#documents figure.document")
    await expect(figures).to_have_count(2)
    image = page.locator("#documents img.viewer-image")
    await image.scroll_into_view_if_needed()
    await expect(image).to_have_js_property("complete", True)
    assert await image.evaluate("img => img.naturalWidth") == 120
    frame = page.locator("#documents iframe.viewer")
    await expect(frame).to_have_count(1)
    for element, kind in [(image, "legal_residence_proof"), (frame, "ct01")]:
        src = await element.get_attribute("src")
        assert src is not None
        answer = await page.request.get(stack.portal + src if src.startswith("/") else src)
        _, data, media_type = filed.documents[kind]
        assert answer.status == 200, await answer.text()
        assert answer.headers["content-type"].startswith(media_type)
        assert await answer.body() == data


@needs(DESK, PRINTS, SLIPS, REVIEW_STAGES)
async def test_a_desk_submission_prints_its_receipt(
    stack: ConsoleStack, browsing: Browsing, checker: Checker
) -> None:
    page = await browsing.page("desk", "desk-officer")
    await sign_in(page, stack, DESK_OFFICER, "/desk")
    await checker.assert_accessible(page, "desk-procedures")
    await page.locator('a[href="/desk/1.004194"]').click()
    await page.wait_for_url("**/desk/1.004194")
    await checker.assert_accessible(page, "desk-form")
    await assert_keyboard_usable(page)
    for name, value in {
        "applicant.full_name": "Nguyễn Thị Ánh Tuyết",
        "applicant.date_of_birth": "1990-05-17",
        "applicant.personal_id": "001190012345",
        "applicant.phone": "0912 345 678",
        "residence.ward_code": "00004",
        "residence.address": "Số 12 phố Đội Cấn",
        "stay_from": "2026-12-01",
        "stay_until": "2027-11-30",
    }.items():
        await page.locator(f'[name="{name}"]').fill(value)
    await page.locator('[name="applicant.sex"]').select_option("female")
    await page.locator('[name="residence.housing_basis"]').select_option("rented")
    await page.locator("#f-notify_by-sms").check()
    await page.locator('[name="file.ct01"]').set_input_files(
        files=FilePayload(
            name="to-khai-ct01.pdf", mimeType="application/pdf", buffer=pdf_document()
        )
    )
    await page.locator('[name="file.legal_residence_proof"]').set_input_files(
        files=FilePayload(name="hop-dong.png", mimeType="image/png", buffer=png_document())
    )
    await page.locator("button.desk-submit").click()
    code_cell = page.locator("dd.code")
    await expect(code_cell).to_be_visible()
    code = (await code_cell.inner_text()).strip()
    promised_on_page = (await page.locator("dd.promised").inner_text()).strip()
    await checker.assert_accessible(page, "desk-receipt")

    text = pdf_text(await printed(page, page.get_by_role("button", name=re.compile("In"))))
    assert code in text
    assert promised_on_page in text, (promised_on_page, text)
    assert re.search(r"\d\d giờ \d\d phút, ngày \d\d/\d\d/\d{4}", text)
    for name in ("Nguyễn Thị Ánh Tuyết", "Lê Thị Bình", "Đăng ký tạm trú"):
        assert name in text, name


@pytest.fixture(scope="module")
def late(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """A stack where a new dossier's reception step is overdue seconds after it arrives."""
    folder = tmp_path_factory.mktemp("late")
    workflows = folder / "workflows"
    shutil.copytree(ROOT / "services" / "review" / "workflows", workflows)
    two = workflows / "two-level.v1.yaml"
    assert RECEPTION_SLA in two.read_text(encoding="utf-8")
    two.write_text(two.read_text(encoding="utf-8").replace(RECEPTION_SLA, SHORT_RECEPTION), "utf-8")
    env = {
        "MOTCUA_REVIEW_WORKFLOWS_DIR": str(workflows),
        "MOTCUA_REVIEW_CLOCK_OFFSET_SECONDS": str(_to_working_monday()),
        "MOTCUA_REVIEW_TIMER_INTERVAL_SECONDS": "0.5",
    }
    with console_stack(infra, folder, env) as running:
        yield running


def _to_working_monday() -> float:
    """Seconds from now to the next working Monday, 08:00 in Vietnam."""
    today = datetime.now(VIETNAM)
    monday = (today + timedelta(days=7 - today.weekday())).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    while not WorkingCalendar().is_working_day(monday.date()):  # say, a Tết Monday
        monday += timedelta(days=7)
    return (monday - today).total_seconds()


def _apology_day() -> date:
    """A working day well after the promised date, for the chief's new date."""
    day = (datetime.now(VIETNAM) + timedelta(days=45)).date()
    while not WorkingCalendar().is_working_day(day):
        day += timedelta(days=1)
    return day


@needs(QUEUES, DOSSIER_PAGE, REVIEW_STAGES, PRINTS, SLIPS)
async def test_an_overdue_dossier_shows_red_and_its_apology_prints_the_new_date(
    late: ConsoleStack, browsing: Browsing, checker: Checker
) -> None:
    filed, page, row = await filed_in_queue(browsing, late, "overdue")
    cell = row.locator("td.deadline")
    assert "overdue" in (await cell.get_attribute("class") or "")
    assert await cell.evaluate("td => getComputedStyle(td).color") == RED
    assert "Quá hạn" in await cell.inner_text()  # the word too, not the colour alone
    await checker.assert_accessible(page, "queue-overdue")
    task_path = await open_row(page, late, row, filed.code)
    await checker.assert_accessible(page, "dossier-overdue-officer")

    chief = await browsing.page("desk", "chief")
    await sign_in(chief, late, CHIEF, task_path)
    new_day = _apology_day()
    await press(chief.locator("details:has(#apology) > summary"))  # the form folds away
    form = chief.locator("#apology")
    await form.locator("#apology-date").fill(new_day.isoformat())
    await form.locator("#apology-time").fill("15:30")
    await form.locator("textarea, input[name=reason]").first.fill(
        "Cần xác minh thêm thông tin cư trú"
    )
    await press(form.locator("button[type=submit]"))
    await expect(chief.locator("#notice")).to_be_visible()
    new_date = f"15 giờ 30 phút, ngày {new_day:%d/%m/%Y}"
    await checker.assert_accessible(chief, "dossier-after-apology")

    button = chief.locator('form[action^="/prints/apology/"] button')
    if await button.count() == 0:
        pytest.skip("needs the apology print button on the dossier page from branch pages")
    text = pdf_text(await printed(chief, button))
    assert filed.code in text and new_date in text, text
    assert "Cần xác minh thêm thông tin cư trú" in text
    assert APPLICANT in text


@needs(QUEUES, DOSSIER_PAGE, REVIEW_STAGES, OFFICER_DOCUMENTS)
async def test_an_officer_of_another_unit_is_refused_the_dossier_and_its_documents(
    late: ConsoleStack, browsing: Browsing, checker: Checker
) -> None:
    filed, holder, row = await filed_in_queue(browsing, late, "overdue")
    task_path = await open_row(holder, late, row, filed.code)
    sources = await document_sources(holder)
    assert len(sources) == 2

    other = await browsing.page("desk", "other-unit")
    await sign_in(other, late, OTHER_UNIT, "/")
    answer = await other.goto(late.portal + task_path)
    assert answer is not None and answer.status == 403
    assert filed.code not in await other.locator("main").inner_text()
    assert APPLICANT not in await other.locator("body").inner_text()
    await checker.assert_accessible(other, "dossier-403-other-unit")
    for src in sources:
        refused = await other.request.get(late.portal + src)
        assert refused.status == 403, src
        assert refused.headers["content-type"].startswith("text/html")
        data = await refused.body()
        assert all(data != d for _, d, _ in filed.documents.values())


async def document_sources(page: Page) -> list[str]:
    found: list[Any] = await page.locator(
        "#documents img.viewer-image, #documents iframe.viewer"
    ).evaluate_all("els => els.map(e => e.getAttribute('src'))")
    return [str(s) for s in found]
