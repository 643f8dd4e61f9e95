"""An officer on a cheap phone (360 CSS pixels wide): the console's pages reflow to the screen
(nothing wider than it: WCAG 1.4.10, which axe-core does not check) and pass axe-core."""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.checks import Checker, assert_landmarks
from tests.browser.conftest import Browsing
from tests.browser.dossiers import file_online
from tests.browser.officers import sign_in
from tests.browser.stacks import ConsoleStack

BA_DINH = "00004"  # Công an phường Ba Đình (cb-badinh-01, its chief cb-badinh-tp)

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
    ("path", "name", "officer"),
    [
        # The chief's whole-unit queue, with a dossier in it: the table must reflow too.
        pytest.param("/queues?scope=unit", "phone-queues", "cb-badinh-tp", id="phone-queues"),
        pytest.param("/desk", "phone-desk", "cb-badinh-01", id="phone-desk"),
        pytest.param("/desk/1.004194", "phone-desk-form", "cb-badinh-01", id="phone-desk-form"),
    ],
)
async def test_an_officer_works_on_a_phone(
    stack: ConsoleStack,
    browsing: Browsing,
    checker: Checker,
    path: str,
    name: str,
    officer: str,
) -> None:
    if path.startswith("/queues"):
        file_online(stack, ward=BA_DINH)
    page = await browsing.page("phone", name)
    await sign_in(page, stack, officer, path)
    if path.startswith("/queues"):
        for _ in range(30):  # until review has assigned it
            if await page.locator("#queue-table tbody tr").count():
                break
            await asyncio.sleep(1)
            await page.reload()
        assert await page.locator("#queue-table tbody tr").count(), "no dossier in the queue"
    await checker.assert_accessible(page, name)
    await assert_landmarks(page)
    # A wide table may scroll inside its own box; the page itself may not scroll sideways.
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"{path} is {width}px wide: {await page.evaluate(OVERFLOWING)}"
