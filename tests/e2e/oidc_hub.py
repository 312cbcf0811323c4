"""A real hub logging in through a real OpenID provider (node-oidc-provider), for e2e tests.

The provider must know the hub's callback URL before the hub starts, and the hub must know the
provider's issuer, so the hub's public port is picked first and forced into its config.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from amalthea.auth.state_crypto import generate_key
from amalthea.testing.engines.oidc_provider import start_provider
from amalthea.testing.hub import RunningHub, free_port, start_hub

CLIENT_ID = "amalthea-e2e"
CLIENT_SECRET = "e2e-client-secret"


@contextlib.contextmanager
def oidc_hub(
    tmp_path: Path, extra_config: str = "", access_token_ttl: int = 3600, **hub_kw: Any
) -> Iterator[tuple[RunningHub, Any]]:
    port = free_port()
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"http://127.0.0.1:{port}/hub/oauth_callback"],
        "post_logout_redirect_uris": [f"http://127.0.0.1:{port}/hub/login"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    with start_provider([client], access_token_ttl=access_token_ttl) as provider:
        config = f"""
c.OIDCAuthenticator.issuer = {provider.issuer!r}
c.OIDCAuthenticator.client_id = {CLIENT_ID!r}
c.OIDCAuthenticator.client_secret = {CLIENT_SECRET!r}
c.OIDCAuthenticator.scope = ["openid", "profile", "email", "groups", "offline_access"]
c.OIDCAuthenticator.extra_authorize_params = {{"prompt": "consent"}}
c.OIDCAuthenticator.allowed_groups = {{"physics", "chemistry"}}
c.OIDCAuthenticator.admin_groups = {{"hub-admins"}}
c.OIDCAuthenticator.manage_groups = True
c.OIDCAuthenticator.enable_auth_state = True
c.OIDCAuthenticator.access_token_env = "OIDC_ACCESS_TOKEN"
{extra_config}
"""
        env = {"AMALTHEA_CRYPT_KEY": generate_key(), **hub_kw.pop("env", {})}
        hub = start_hub(tmp_path, config, authenticator="oidc", env=env, port=port, **hub_kw)
        try:
            yield hub, provider
        finally:
            hub.stop()


def form_action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match, html
    return match.group(1)


def login_button(html: str) -> str:
    match = re.search(r'id="login-button" href="([^"]+)"', html)
    assert match, html
    return match.group(1).replace("&amp;", "&")


def oidc_login(client: httpx.Client, hub: RunningHub, user: str, password: str) -> httpx.Response:
    """Play the browser: hub login page -> its button -> provider login + consent -> hub."""
    page = client.get(f"{hub.url}/hub/login")
    r = client.get(hub.url + login_button(page.text), follow_redirects=True)
    assert "Sign in to the test provider" in r.text, r.text
    base = str(r.url).split("/interaction/")[0]
    r = client.post(
        base + form_action(r.text),
        data={"prompt": "login", "login": user, "password": password},
        follow_redirects=True,
    )
    if "Authorize" in r.text:
        r = client.post(
            base + form_action(r.text), data={"prompt": "consent"}, follow_redirects=True
        )
    return r
