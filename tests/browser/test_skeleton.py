"""The console's pages that need no sign-in, on a phone and at a desk: accessible to axe-core,
one h1 and a main landmark, a skip link that moves the focus, every control reached by Tab
with a visible focus, and the Content-Security-Policy enforced (the `browsing` fixture fails
the test on any violation the console reports)."""

from __future__ import annotations

import pytest

from tests.browser.checks import Checker, assert_page_usable
from tests.browser.conftest import Browsing, Screen
from tests.browser.stacks import Stack

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize("screen", ["phone", "desk"])
async def test_the_signed_out_home_page(
    stack: Stack, browsing: Browsing, checker: Checker, screen: Screen
) -> None:
    page = await browsing.page(screen)
    answer = await page.goto(stack.portal + "/")
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in (answer.headers.get("content-security-policy") or "")
    assert await page.get_attribute("html", "lang") == "vi"
    # The citizens' front door (issue 12), with the officers' way in.
    assert await page.locator("h1").inner_text() == "Nộp và theo dõi hồ sơ"
    stops = await assert_page_usable(checker, page, f"home-signed-out-{screen}")
    names = [s.name.split(" ", 1)[1] for s in stops]
    assert names[0] == '"Bỏ qua, đến nội dung chính"'
    assert any("đăng nhập" in name.lower() for name in names), names
    # A console page loads htmx from our own origin, so the CSP let it run.
    await page.goto(stack.portal + "/khong-co-trang-nay")
    assert await page.evaluate("() => typeof window.htmx") == "object"


async def test_the_not_found_page(stack: Stack, browsing: Browsing, checker: Checker) -> None:
    page = await browsing.page("phone")
    answer = await page.goto(stack.portal + "/khong-co-trang-nay")
    assert answer is not None and answer.status == 404
    assert await page.locator("h1").inner_text() == "Không thực hiện được"
    assert "Không tìm thấy trang này." in await page.locator("main").inner_text()
    await assert_page_usable(checker, page, "not-found")


async def test_the_english_switch_is_kept_until_switched_back(
    stack: Stack, browsing: Browsing, checker: Checker
) -> None:
    page = await browsing.page("desk")
    await page.goto(stack.portal + "/")
    await page.get_by_role("link", name="English").click()
    await page.wait_for_url("**/?lang=en")
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.locator("h1").inner_text() == "File and follow a dossier"
    await assert_page_usable(checker, page, "home-english")

    await page.goto(stack.portal + "/khong-co-trang-nay")  # the cookie keeps English
    assert await page.get_attribute("html", "lang") == "en"
    assert "There is no such page." in await page.locator("main").inner_text()
    await checker.assert_accessible(page, "not-found-english")

    await page.get_by_role("link", name="Tiếng Việt").click()
    await page.wait_for_url("**/khong-co-trang-nay?lang=vi")
    assert await page.get_attribute("html", "lang") == "vi"
    assert await page.locator("h1").inner_text() == "Không thực hiện được"
