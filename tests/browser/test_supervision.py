"""The supervisors' and admins' screens, as each role sees them after signing in at the
provider: every page passes axe-core, keeps its landmarks and is usable by keyboard; an officer
is refused the supervision page with the portal's own error page."""

from __future__ import annotations

import pytest

from tests.browser.checks import Checker, assert_landmarks, assert_page_usable
from tests.browser.conftest import Browsing
from tests.browser.officers import sign_in
from tests.browser.stacks import ConsoleStack

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize(
    ("officer", "path", "name"),
    [
        ("cb-pc06-gs", "/supervision", "supervision-province"),
        ("cb-badinh-tp", "/supervision", "supervision-unit-chief"),
        ("cb-pc06-qt", "/admin/units", "admin-units"),
        ("cb-pc06-qt", "/admin/units/CAP-BADINH", "admin-unit"),
        ("cb-pc06-qt", "/admin/officers", "admin-officers"),
        ("cb-pc06-qt", "/admin/officers/cb-badinh-01", "admin-officer"),
        ("cb-pc06-gs", "/admin/national", "admin-national"),
    ],
    ids=[
        "supervision-province",
        "supervision-unit-chief",
        "admin-units",
        "admin-unit",
        "admin-officers",
        "admin-officer",
        "admin-national",
    ],
)
async def test_the_supervision_and_admin_screens(
    stack: ConsoleStack, browsing: Browsing, checker: Checker, officer: str, path: str, name: str
) -> None:
    page = await browsing.page("desk", name)
    await sign_in(page, stack, officer, path)
    assert await page.evaluate("() => document.title") != ""
    await assert_page_usable(checker, page, name)


async def test_an_officer_is_refused_the_supervision_page(
    stack: ConsoleStack, browsing: Browsing, checker: Checker
) -> None:
    page = await browsing.page("phone")
    await sign_in(page, stack, "cb-badinh-01", "/")
    answer = await page.goto(stack.portal + "/supervision")
    assert answer is not None and answer.status == 403
    assert await page.locator("h1").inner_text() == "Không thực hiện được"
    await checker.assert_accessible(page, "supervision-403-officer")
    await assert_landmarks(page)
