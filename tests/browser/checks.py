"""What every browser test checks on a page: axe-core finds no serious or critical violation
(WCAG 2.0 A/AA and 2.1 AA rules), the Content-Security-Policy is enforced and nothing breaks it,
the page has its landmarks, and the keyboard reaches every control with a visible focus.

axe-core is not added as a <script> tag: the portal's CSP (`script-src 'self'`) refuses inline
scripts, which is what Playwright's `add_script_tag` makes. Its source is evaluated through the
DevTools protocol instead (`page.evaluate`), which the page's CSP does not govern, so the page
keeps its real policy while axe runs and no context needs `bypass_csp`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import ConsoleMessage, Error, Page

from tools.devstack import ROOT

AXE = ROOT / "tools" / "node" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21aa"]
BLOCKING = {"serious", "critical"}
SCREENSHOTS = ROOT / ".run" / "browser" / "screenshots"


@cache
def _axe_source() -> str:
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: run scripts/provision.sh (npm ci in tools/node)")
    return AXE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: list[str]

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} — {', '.join(self.targets)}"


async def axe_violations(page: Page) -> list[Violation]:
    """Every violation axe-core finds on the page as it is now (all impacts)."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(_axe_source())
    found: list[dict[str, Any]] = await page.evaluate(
        """async (tags) => {
            const result = await window.axe.run(document, {
                runOnly: {type: 'tag', values: tags}, resultTypes: ['violations'],
            });
            return result.violations.map(v => ({
                rule: v.id, impact: v.impact || 'minor', help: v.help,
                targets: v.nodes.map(n => n.target.join(' ')),
            }));
        }""",
        AXE_TAGS,
    )
    return [Violation(**v) for v in found]


def screenshot_path(test: str, name: str) -> Path:
    return SCREENSHOTS / _slug(test) / f"{_slug(name)}.png"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "page"


@dataclass
class Checker:
    """The checks of one test; keeps every screenshot it took, named by the test."""

    test: str
    taken: list[Path] = field(default_factory=list)

    async def screenshot(self, page: Page, name: str) -> Path:
        path = screenshot_path(self.test, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(path), full_page=True, timeout=15_000)
        self.taken.append(path)
        return path

    async def assert_accessible(self, page: Page, name: str) -> list[Violation]:
        """Screenshot the page, then fail on any serious or critical axe violation; every
        violation found is kept beside the screenshot (`<name>.axe.json`) and returned."""
        await self.screenshot(page, name)
        violations = await axe_violations(page)
        report = screenshot_path(self.test, name).with_suffix(".axe.json")
        report.write_text(
            json.dumps([v.__dict__ for v in violations], ensure_ascii=False, indent=1), "utf-8"
        )
        blocking = [v for v in violations if v.impact in BLOCKING]
        assert not blocking, f"axe-core on {name} ({page.url}):\n" + "\n".join(
            f"  {v}" for v in blocking
        )
        return violations


class Console:
    """The console messages and uncaught errors of a page, watched from its first request."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", self._error)

    def _message(self, message: ConsoleMessage) -> None:
        self.messages.append(f"{message.type}: {message.text}")

    def _error(self, error: Error) -> None:
        self.errors.append(error.message)

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]


# Every element a keyboard user must reach, in document order, as the browser shows them
# (not what a closed <details> folds away: checkVisibility sees its content-visibility).
_FOCUSABLE = """() => {
    const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, '
        + '[tabindex]:not([tabindex="-1"]), iframe, object, [contenteditable=""], '
        + '[contenteditable=true]';
    return [...document.querySelectorAll(selector)]
        .filter(el => !el.disabled && el.checkVisibility({visibilityProperty: true}))
        .map(el => window.__describe(el));
}"""

_DESCRIBE = """() => {
    window.__describe = (el) => {
        const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim();
        return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}`
            + `${el.getAttribute('name') ? '[name=' + el.getAttribute('name') + ']' : ''}`
            + `${el.getAttribute('href') ? '[href=' + el.getAttribute('href') + ']' : ''}`
            + ` "${text.slice(0, 40)}"`;
    };
}"""

# The focused element, and whether its focus can be seen: an outline of 2px or more, or a
# box shadow, in a colour other than transparent.
_FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body || el === document.documentElement) return null;
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2
        && style.outlineColor !== 'rgba(0, 0, 0, 0)';
    const shadow = style.boxShadow && style.boxShadow !== 'none';
    const box = el.getBoundingClientRect();
    return {
        name: window.__describe(el), element: [...document.querySelectorAll('*')].indexOf(el),
        visible_focus: Boolean(outline || shadow),
        on_screen: box.width > 0 && box.height > 0 && box.bottom > 0
            && box.right > 0 && box.left < window.innerWidth,
    };
}"""


@dataclass(frozen=True)
class Stop:
    name: str
    element: int
    """The element's place in the document (two links may read the same)."""
    visible_focus: bool
    on_screen: bool


# Where the next Tab starts: a focus point placed before everything (blur() alone leaves
# Chromium's starting point where the focus last was), removed once the focus has moved on.
_MARK = """() => {
    const mark = document.createElement('span');
    mark.id = '__tab_start';
    mark.tabIndex = -1;
    document.body.prepend(mark);
    mark.focus();
    window.scrollTo(0, 0);
}"""
_UNMARK = "() => { const m = document.getElementById('__tab_start'); if (m) m.remove(); }"


async def _focus_top(page: Page) -> None:
    await page.evaluate(_MARK)


async def tab_order(page: Page, limit: int = 200) -> list[Stop]:
    """Press Tab from the top of the page until the focus leaves the page; each stop."""
    await page.evaluate(_DESCRIBE)
    await _focus_top(page)
    stops: list[Stop] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        await page.evaluate(_UNMARK)
        focused = await page.evaluate(_FOCUSED)
        if focused is None or (stops and focused["element"] == stops[0].element):
            return stops
        if stops and stops[-1].element == focused["element"]:
            continue  # the parts of one control (a date's day, month, year) or a frame's own
        stops.append(Stop(**focused))
    raise AssertionError(f"Tab never left the page after {limit} presses: {stops[-5:]}")


async def focusable(page: Page) -> list[str]:
    await page.evaluate(_DESCRIBE)
    names: list[str] = await page.evaluate(_FOCUSABLE)
    return names


async def assert_keyboard_usable(page: Page) -> list[Stop]:
    """Every control is reached by Tab, in document order, each with a visible focus."""
    stops = await tab_order(page)
    reached = [s.name for s in stops]
    expected = await focusable(page)
    assert reached == expected, (
        f"Tab order on {page.url}:\n  reached {reached}\n  controls {expected}\n"
        f"  never reached {[n for n in expected if n not in reached]}"
    )
    # A frame's focus is drawn by the document inside it (the browser's PDF viewer).
    hidden = [s.name for s in stops if not s.visible_focus and not s.name.startswith("iframe")]
    assert not hidden, f"no visible focus on {page.url}: {hidden}"
    off = [s.name for s in stops if not s.on_screen]
    assert not off, f"focused but off screen on {page.url}: {off}"
    return stops


async def assert_landmarks(page: Page) -> None:
    """One h1, one main landmark, and a skip link first in the Tab order that moves the focus
    to the main content."""
    assert await page.locator("h1").count() == 1, f"h1 on {page.url}"
    assert await page.locator("main, [role=main]").count() == 1, f"main on {page.url}"
    await _focus_top(page)
    await page.keyboard.press("Tab")
    await page.evaluate(_UNMARK)
    skip = page.locator(":focus")
    target = await skip.get_attribute("href")
    assert target is not None and target.startswith("#"), f"first Tab stop: {target}"
    box = await skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0, "skip link shown when focused"
    await page.keyboard.press("Enter")
    focused = await page.evaluate("() => document.activeElement.id")
    assert f"#{focused}" == target, f"skip link moved the focus to #{focused}, not {target}"
    main_id = await page.locator("main, [role=main]").first.get_attribute("id")
    assert main_id == focused, "the skip link leads to the main landmark"


async def assert_page_usable(checker: Checker, page: Page, name: str) -> list[Stop]:
    """All the checks of a page: axe-core (with its screenshot), landmarks, keyboard; the
    page's Tab stops."""
    await checker.assert_accessible(page, name)
    await assert_landmarks(page)
    return await assert_keyboard_usable(page)
