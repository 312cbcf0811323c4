"""OIDC login in a real Chromium: stand-in hub -> provider login form -> consent -> callback.

This checks what an HTTP client cannot: that real-browser cookie rules (SameSite=Lax on the
cross-site redirect back, the provider's own cookies) let the flow complete. The full test from
the hub's login button to a running JupyterLab needs the hub and is not here yet.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from auth_web_helpers import free_port, serve_hub

from amalthea.auth.oidc import OIDCAuthenticator
from amalthea.testing.engines.oidc_provider import start_provider

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("node"), reason="needs node"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs apt-get install chromium"),
]


async def test_oidc_login_in_chromium():
    playwright = pytest.importorskip("playwright.async_api")
    port = free_port()
    client = {
        "client_id": "hub",
        "client_secret": "s",
        "redirect_uris": [f"http://127.0.0.1:{port}/hub/oauth_callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    with start_provider([client]) as provider:
        auth = OIDCAuthenticator(
            issuer=provider.issuer,
            client_id="hub",
            client_secret="s",
            scope=["openid", "profile", "groups"],
            allowed_groups={"physics"},
        )
        async with serve_hub(auth, port) as hub, playwright.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                await page.goto(f"{hub}/hub/oauth_login?next=/hub/home")
                await page.fill("#username", "alice")
                await page.fill("#password", "alice-pw")
                await page.click("#sign-in")
                await page.click("#allow")
                await page.wait_for_url(f"{hub}/hub/oauth_callback?**")
                body = json.loads(await page.inner_text("body"))
            finally:
                await browser.close()
    assert body["result"]["name"] == "alice"
    assert body["result"]["groups"] == ["hub-admins", "physics"]
    assert body["next_url"] == "/hub/home"
