"""An officer at the browser: signing in at the province's provider (the real one the tests
start, tools/oidc) and out again."""

from __future__ import annotations

from playwright.async_api import Page

from tests.browser.checks import Checker
from tests.browser.stacks import ConsoleStack
from tests.oidc import password_of


async def sign_in(
    page: Page,
    stack: ConsoleStack,
    officer_id: str,
    path: str = "/",
    checker: Checker | None = None,
) -> None:
    """Open `path` (a page behind sign-in, or `/`), sign in at the provider's form as
    `officer_id`, and be back on `path`; with a checker, the provider's form is checked too."""
    target = stack.portal + path
    await page.goto(target if path != "/" else f"{stack.portal}/signin?next=/")
    await page.wait_for_url(f"{stack.provider.issuer}/interaction/**")
    if checker is not None:
        await checker.assert_accessible(page, "provider-login")
    await page.get_by_label("Tên đăng nhập (mã cán bộ)").fill(officer_id)
    await page.get_by_label("Mật khẩu").fill(password_of(officer_id))
    await page.get_by_role("button", name="Đăng nhập", exact=True).click()
    await page.wait_for_url(target)


async def sign_out(page: Page, stack: ConsoleStack) -> None:
    """The portal's sign-out, then the provider's own question, answered yes."""
    await page.get_by_role("button", name="Đăng xuất").click()
    await page.wait_for_url(f"{stack.provider.issuer}/**")
    await page.get_by_role("button", name="Đăng xuất").click()
    await page.wait_for_url(f"{stack.portal}/signin/signed-out")
