"""Page objects for the dashboard."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS


class Dashboard:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def open(self, path: str = "/") -> Dashboard:
        self.page.goto(self.base_url + path)
        self.expect_live()
        return self

    def expect_live(self, timeout: float = 10_000) -> None:
        expect(self.page.locator("#conn")).to_have_attribute("data-state", "live", timeout=timeout)

    # -- timeline ------------------------------------------------------------------------------
    @property
    def rows(self):
        return self.page.locator("#timeline > li")

    def glint(self, seq: int):
        return self.page.locator(f"#glint-{seq}")

    def shown_seqs(self) -> list[int]:
        return [int(s) for s in self.rows.evaluate_all("rows => rows.map(r => r.dataset.seq)")]

    def filter(self, module: str = "", phase: str = "") -> None:
        self.page.fill("#filter-module", module)
        self.page.select_option("#filter-phase", phase)
        self.page.press("#filter-module", "Enter")

    @property
    def pause_button(self):
        return self.page.locator("#pause")

    @property
    def new_count(self):
        return self.page.locator("#new-count")

    def open_glint(self, seq: int):
        self.glint(seq).locator("a").click()
        sheet = self.page.locator("#detail")
        expect(sheet).to_be_visible()
        return sheet

    # -- breath --------------------------------------------------------------------------------
    @property
    def breath(self):
        return self.page.locator("#breath")

    def open_controls(self) -> None:
        details = self.page.locator("#admin details")
        if details.get_attribute("open") is None:
            self.page.click("#admin summary")

    def hold_phase(self, phase: str, minutes: int = 5) -> None:
        self.open_controls()
        self.page.select_option("#admin-phase", phase)
        self.page.select_option("#admin-minutes", str(minutes))
        self.page.click("#admin-set-phase")

    def set_climate(self, climate: str, minutes: int = 5) -> None:
        self.open_controls()
        self.page.select_option("#admin-climate", climate)
        self.page.select_option("#admin-minutes", str(minutes))
        self.page.click("#admin-set-climate")

    # -- rituals -------------------------------------------------------------------------------
    @property
    def runs(self):
        """The ritual log's rows, newest first."""
        return self.page.locator("#ritual-log > li")

    def ritual_state(self, name: str):
        return self.page.locator("#ritual-states .rstate").filter(
            has=self.page.locator(".rname", has_text=re.compile(rf"^{re.escape(name)}$"))
        )

    def invoke(self, name: str) -> None:
        self.open_controls()
        self.page.click(f"#invoke-{name}-button")

    def invoke_result(self, name: str):
        return self.page.locator(f"#invoke-{name} .ritual-result")

    # -- emit form -----------------------------------------------------------------------------
    def emit(self, module: str, context: str = "", phase: str = "") -> None:
        self.page.fill("#emit-module", module)
        self.page.select_option("#emit-phase", phase)
        self.page.fill("#emit-context", context)
        # Wait for the answer and its swap: a next emit must not type into a form about to be
        # replaced.
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and "/dashboard/emit" in r.url
        ):
            self.page.click("#emit-form button[type=submit]")
        self.page.wait_for_function(
            "() => !document.querySelector('#emit-form')"
            "?.closest('.htmx-request, [aria-busy=true]')"
        )

    # -- pictures ------------------------------------------------------------------------------
    def screenshot(self, name: str, full_page: bool = False, settle: bool = True) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if settle:
            self.page.wait_for_timeout(700)  # let arrivals and the glow settle
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def has_class(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


# Layout boxes come back in fractions of a CSS pixel (device scale, transforms mid-transition):
# a box "as wide as the screen" can measure 390.00001 px on a 390 px phone.
LAYOUT_TOLERANCE = 0.5


def fits(size: float, room: float) -> bool:
    """A measured width or height fits in `room` CSS pixels, up to sub-pixel rounding."""
    return size <= room + LAYOUT_TOLERANCE
