"""An officer on a cheap phone (360 CSS pixels wide): the console's pages reflow to the screen
(nothing wider than it: WCAG 1.4.10, which axe-core does not check) and pass axe-core."""

from __future__ import annotations

import pytest

from tests.browser.checks import Checker, assert_landmarks
from tests.browser.conftest import Browsing
from tests.browser.officers import sign_in
from tests.browser.stacks import ConsoleStack

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# The outermost elements that stick out past the right edge of the screen (the layout
# viewport's width: a phone zooms out to fit a page too wide, so innerWidth grows with it).
OVERFLOWING = """() => {
    const edge = document.documentElement.clientWidth + 1;
    const out = el => el.getBoundingClientRect().right > edge;
    return [...document.querySelectorAll('body *')]
        .filter(el => out(el) && !out(el.parentElement))
        .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
            + (el.className && typeof el.className === 'string' ? '.' + el.className : ''))
        .slice(0, 10);
}"""


@pytest.mark.parametrize(
    ("path", "name"),
    [
        pytest.param("/queues", "phone-queues", id="phone-queues"),
        pytest.param("/desk", "phone-desk", id="phone-desk"),
        pytest.param("/desk/1.004194", "phone-desk-form", id="phone-desk-form"),
    ],
)
async def test_an_officer_works_on_a_phone(
    stack: ConsoleStack, browsing: Browsing, checker: Checker, path: str, name: str
) -> None:
    page = await browsing.page("phone", name)
    await sign_in(page, stack, "cb-badinh-01", path)
    await checker.assert_accessible(page, name)
    await assert_landmarks(page)
    # A wide table may scroll inside its own box; the page itself may not scroll sideways.
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"{path} is {width}px wide: {await page.evaluate(OVERFLOWING)}"
