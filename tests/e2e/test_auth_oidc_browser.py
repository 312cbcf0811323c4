"""In real Chromium: the hub's login button -> the provider's form -> back to a running JupyterLab.

What a scripted HTTP client cannot show: the browser's cookie rules across the two origins
(SameSite=Lax on the redirect back), the hub's spawn-pending page moving on by itself, and
JupyterLab actually rendering behind the proxy after the single-user OAuth handshake.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from oidc_hub import oidc_hub

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not shutil.which("node"), reason="needs node + npm"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs apt-get install chromium"),
]


def test_oidc_login_to_jupyterlab_in_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with oidc_hub(tmp_path) as (hub, _provider), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{hub.url}/hub/login")
            page.click("#login-button")  # -> /hub/oauth_login -> provider's login form
            page.fill("#username", "alice")
            page.fill("#password", "alice-pw")
            page.click("#sign-in")
            page.click("#allow")
            # callback -> /hub/spawn -> spawn-pending -> /user/alice/ -> single-user OAuth -> lab
            page.wait_for_url(f"{hub.url}/user/alice/lab**", timeout=120_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
            page.wait_for_selector(".jp-Launcher, .jp-LauncherBody", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "oidc-login-jupyterlab.png"))
            cookies = {c["name"] for c in page.context.cookies()}
        finally:
            browser.close()
    assert "jupyterhub-hub-login" in cookies
