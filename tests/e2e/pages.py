"""Page objects for the dashboard."""

from __future__ import annotations

from playwright.sync_api import Page, expect


class Dashboard:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def open(self) -> "Dashboard":
        self.page.goto(self.base_url + "/")
        expect(self.page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
        return self

    @property
    def timeline(self):
        return self.page.locator("#timeline")

    def glint(self, seq: int):
        return self.page.locator(f"#glint-{seq}")

    @property
    def breath(self):
        return self.page.locator("#breath")

    def emit(self, module: str, context: str = "", phase: str = "") -> None:
        self.page.fill("#emit-module", module)
        if phase:
            self.page.select_option("#emit-phase", phase)
        self.page.fill("#emit-context", context)
        self.page.click("#emit-form button[type=submit]")

    def screenshot(self, path: str) -> None:
        self.page.screenshot(path=path, full_page=False)
