"""The browser tests' own checks can fail: axe-core's serious violations, a broken
Content-Security-Policy, and a control whose keyboard focus cannot be seen are each caught."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.browser.checks import Checker, Console, assert_keyboard_usable
from tests.browser.conftest import Browsing
from tests.browser.stacks import Stack

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# A button with no name (axe's button-name, critical) on top of the real page.
NAMELESS_BUTTON = (
    "() => { document.querySelector('main').append(document.createElement('button')); }"
)


async def test_axe_fails_a_page_with_a_nameless_button(
    stack: Stack, browsing: Browsing, checker: Checker
) -> None:
    page = await browsing.page("desk")
    await page.goto(stack.portal + "/khong-co-trang-nay")  # a console page (base.html)
    await page.evaluate(NAMELESS_BUTTON)
    with pytest.raises(AssertionError, match=r"button-name \(critical\)") as failure:
        await checker.assert_accessible(page, "nameless-button")
    assert str(failure.value).endswith("— button")  # the target, to find it
    assert checker.taken[-1].exists()  # the page is kept even when it fails


async def test_an_inline_script_or_handler_is_refused_and_seen(
    stack: Stack, browser: Browser
) -> None:
    # Its own context: the `browsing` fixture would (rightly) fail this test for the violation.
    context = await browser.new_context()
    try:
        page = await context.new_page()
        console = Console(page)
        await page.goto(stack.portal + "/")
        assert console.csp_violations() == []
        await page.evaluate(
            """() => {
                const s = document.createElement('script');
                s.textContent = 'window.injected = true';
                document.body.append(s);
                const b = document.createElement('div');
                b.setAttribute('onclick', 'window.clicked = true');
                document.body.append(b);
                b.click();
            }"""
        )
        await page.wait_for_timeout(200)
        assert await page.evaluate("() => [window.injected, window.clicked]") == [None, None]
        violations = console.csp_violations()
        assert len(violations) == 2, violations
        assert all("script-src 'self'" in v for v in violations)
    finally:
        await context.close()


async def test_a_control_without_a_visible_focus_fails(stack: Stack, browsing: Browsing) -> None:
    page = await browsing.page("desk")
    await page.goto(stack.portal + "/")
    await assert_keyboard_usable(page)
    # CSSOM (allowed by the CSP, unlike a style attribute in the markup) removes the outline.
    await page.evaluate("() => { document.querySelector('.brand').style.outline = 'none'; }")
    with pytest.raises(AssertionError, match=r'no visible focus.*"Một cửa"'):
        await assert_keyboard_usable(page)
