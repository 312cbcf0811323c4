"""The admin panel in a real Chromium (Playwright, Debian's /usr/bin/chromium, no download):
add a user, start their server, stop it, give them a named server, an API token and a share,
delete the user."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from amalthea.testing.hub import start_hub

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
FAKE = [sys.executable, "-m", "amalthea.testing.fake_singleuser"]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-extensions",
    "--disable-sync",
]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def test_admin_adds_starts_stops_deletes(tmp_path, browser):
    hub = start_hub(
        tmp_path, config=f"c.Spawner.cmd = {FAKE!r}\nc.Amalthea.allow_named_servers = True\n"
    )
    try:
        api = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers)
        page = browser.new_page()
        page.on("dialog", lambda d: d.accept())
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name=username]", hub.admin_name)
        page.fill("input[name=password]", "pw")
        page.click("button[type=submit]")
        page.goto(f"{hub.url}/hub/admin")
        page.wait_for_selector(f"tr[data-user={hub.admin_name}]")

        page.fill("#add-names", "webuser")
        page.click("#add-submit")
        row = page.locator("tr[data-user=webuser]")
        row.wait_for()
        assert api.get("/users/webuser").status_code == 200

        row.get_by_role("button", name="start").click()
        row.get_by_text("default: running").wait_for(timeout=30000)
        assert api.get("/users/webuser").json()["servers"][""]["ready"] is True

        row.get_by_role("button", name="stop").click()
        row.get_by_text("default: stopped").wait_for(timeout=30000)
        assert api.get("/users/webuser").json()["servers"] == {}

        # the user's detail pane: a named server, an API token (shown once), a share
        row.get_by_role("link", name="webuser").click()
        page.wait_for_selector("#user-detail:not(.hidden)")
        page.fill("#new-server-name", "gpu")
        page.click("#new-server-submit")
        row.get_by_text("gpu: running").wait_for(timeout=30000)
        assert api.get("/users/webuser").json()["servers"]["gpu"]["ready"] is True

        page.fill("#new-token-note", "made in the panel")
        page.click("#new-token-submit")
        page.wait_for_selector("#new-token-result:not(.hidden)")
        token = page.text_content("#new-token-value")
        r = httpx.get(hub.api_url + "/user", headers={"Authorization": f"token {token}"})
        assert r.status_code == 200 and r.json()["name"] == "webuser"
        page.locator("#detail-tokens").get_by_text("made in the panel").wait_for()

        page.fill("#share-server", "gpu")
        page.fill("#share-with", hub.admin_name)
        page.click("#share-submit")
        page.locator("#detail-shares").get_by_text(f"gpu → {hub.admin_name}").wait_for()
        shares = api.get("/shares/webuser").json()["items"]
        assert [(s["server"]["name"], s["user"]["name"]) for s in shares] == [
            ("gpu", hub.admin_name)
        ]
        assert api.delete("/users/webuser/servers/gpu").status_code in (202, 204)

        page.fill("#search", "webus")  # search narrows the paginated list
        page.wait_for_function("document.querySelectorAll('#users-body tr').length === 1")
        row.get_by_role("button", name="delete").click()
        row.wait_for(state="detached", timeout=15000)
        assert api.get("/users/webuser").status_code == 404
        page.screenshot(path=str(tmp_path / "admin.png"))
    finally:
        hub.stop()
