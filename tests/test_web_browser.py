"""The dashboard in a real headless browser: Debian's chromium driven by Playwright (no browser
download: `executable_path`). The README's test command installs chromium when it is missing
(scripts/test-postgres run); by hand:
`apt-get install chromium && pip install -e '.[test]' && python -m pytest -q -m browser`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fakediscord.helpers import png_bytes
from tests.remixworld import running_world
from tests.test_web_dashboard import TOKEN, dashboard

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def test_chromium_is_installed() -> None:
    """Said plainly, before the browser test fails in a less readable way."""
    assert Path(CHROMIUM).exists(), (
        f"no chromium at {CHROMIUM}: `apt-get install chromium` (or set TEST_CHROMIUM)"
    )


async def test_an_admin_signs_in_reads_a_job_and_blocks_a_member(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with running_world(tmp_path / "data") as w, dashboard(w) as base:
        inter = await w.slash_remix(png_bytes(160, 100), prompt="a fox in the snow")
        await w.result_message(inter)
        [job] = await w.jobs_final(1)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = await browser.new_page()
                page.set_default_timeout(15_000)
                await page.goto(base + "/admin")
                assert page.url.endswith("/admin/login")
                await page.fill("input[name=token]", TOKEN)
                await page.click("button:has-text('Sign in')")
                await page.wait_for_url(base + "/admin")
                assert await page.is_visible("text=In flight at the backend")

                await page.click("header >> text=Jobs")
                await page.click(f'a[href="/admin/jobs/{job.id}"]')
                await page.wait_for_url(f"{base}/admin/jobs/{job.id}")
                assert await page.is_visible("text=a fox in the snow")
                loaded = await page.eval_on_selector("img.input", "img => img.naturalWidth")
                assert loaded > 0  # the input image really loads in the page

                await page.click("header >> text=Usage")
                assert await page.locator("svg rect.delivered").count() == 30
                await page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)

                await page.click("header >> text=Quotas")
                bob = w.discord.bob["id"]
                form = page.locator("form:has(input[name=action][value=block])")
                await form.locator("input[name=user]").fill(bob)
                await form.locator("input[name=reason]").fill("too many requests")
                await form.locator("button").click()
                await page.wait_for_selector("text=Blocked")
                assert await page.is_visible(
                    f"text=Blocked {bob} everywhere (every server and direct messages): too many requests"
                )
                [blocked] = (await w.services.store.policies()).blocks
                assert (blocked.user_id, blocked.guild_id) == (int(bob), None)

                await page.click("button:has-text('Log out')")
                await page.wait_for_url(base + "/admin/login")
            finally:
                await browser.close()
