"""An officer signs in to the console at the real OpenID Connect provider the tests start
(authorization code with PKCE), works as themself, and signs out of both."""

from __future__ import annotations

import pytest

from tests.browser.checks import Checker, assert_page_usable
from tests.browser.conftest import Browsing
from tests.browser.officers import sign_in, sign_out
from tests.browser.stacks import ConsoleStack

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_an_officer_signs_in_at_the_provider_and_out_again(
    stack: ConsoleStack, browsing: Browsing, checker: Checker
) -> None:
    page = await browsing.page("desk")
    await page.goto(stack.portal + "/")
    await page.locator("main").get_by_role("link", name="Đăng nhập").click()
    await page.wait_for_url(f"{stack.provider.issuer}/interaction/**")
    await page.go_back()
    await sign_in(page, stack, "cb-badinh-01", checker=checker)
    assert await page.locator("main p").first.inner_text() == "Xin chào, Trần Văn An."
    assert "Trần Văn An · Cán bộ" in await page.locator("header").inner_text()
    cookies = {c["name"]: c for c in await page.context.cookies(stack.portal)}
    assert cookies["motcua_session"]["httpOnly"] and cookies["motcua_session"]["sameSite"] == "Lax"
    await assert_page_usable(checker, page, "home-signed-in")

    await sign_out(page, stack)
    await checker.assert_accessible(page, "signed-out")
    await page.goto(stack.portal + "/")
    assert "Trần Văn An" not in await page.locator("body").inner_text()
    # Signed out at the provider too: signing in asks for the password again.
    await page.goto(f"{stack.portal}/signin?next=/")
    await page.wait_for_url(f"{stack.provider.issuer}/interaction/**")
    assert await page.get_by_label("Mật khẩu").is_visible()
