"""OIDC login against a real OpenID provider (node-oidc-provider) on 127.0.0.1.

The flow is browser-free: an httpx client plays the browser, submitting the provider's login and
consent forms. ID-token tampering is tested on the validator with tokens we sign ourselves.
"""

from __future__ import annotations

import logging
import re
import shutil
import time

import httpx
import pytest
from auth_web_helpers import free_port, serve_hub

from amalthea.auth.oidc import OIDCAuthenticator
from amalthea.testing.engines.oidc_provider import start_provider

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not shutil.which("node"), reason="needs node + npm (apt-get install nodejs npm)"
    ),
]

CLIENT_ID = "amalthea-hub"
CLIENT_SECRET = "test-client-secret"


@pytest.fixture(scope="module")
def hub_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(hub_port):
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"http://127.0.0.1:{hub_port}/hub/oauth_callback"],
        "post_logout_redirect_uris": [f"http://127.0.0.1:{hub_port}/hub/login"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    with start_provider([client]) as running:
        yield running


def make_auth(issuer: str, **kw) -> OIDCAuthenticator:
    auth = OIDCAuthenticator(
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope=["openid", "profile", "email", "groups", "offline_access"],
        extra_authorize_params={"prompt": "consent"},
        admin_groups={"hub-admins"},
        allowed_groups={"physics", "chemistry"},
        access_token_env="OIDC_ACCESS_TOKEN",
        **kw,
    )
    return auth


def form_action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def browser_login(
    client: httpx.AsyncClient, hub: str, user: str, password: str
) -> httpx.Response:
    """Play the browser: hub login -> provider login form -> consent -> hub callback."""
    r = await client.get(f"{hub}/hub/oauth_login", params={"next": "/hub/home"})
    assert r.status_code == 200 and "Sign in to the test provider" in r.text, r.text
    base = str(r.url).split("/interaction/")[0]
    r = await client.post(
        base + form_action(r.text), data={"prompt": "login", "login": user, "password": password}
    )
    if "Authorize" in r.text:
        r = await client.post(base + form_action(r.text), data={"prompt": "consent"})
    return r


async def test_full_login_flow_groups_and_admin(provider, hub_port):
    auth = make_auth(provider.issuer)
    await auth.startup()
    async with (
        serve_hub(auth, hub_port) as hub,
        httpx.AsyncClient(follow_redirects=True, timeout=20) as client,
    ):
        r = await browser_login(client, hub, "alice", "alice-pw")
        assert r.status_code == 200, r.text
        body = r.json()
        assert str(r.url).startswith(f"{hub}/hub/oauth_callback?code=")
    result = body["result"]
    assert result["name"] == "alice"
    assert result["groups"] == ["hub-admins", "physics"]
    assert result["admin"] is True
    assert body["next_url"] == "/hub/home"
    state = result["auth_state"]
    assert state["access_token"] and state["refresh_token"] and state["id_token"]
    assert state["claims"]["email"] == "alice@example.org"
    assert state["expires_at"] > time.time() + 3000


async def test_second_user_not_admin_and_wrong_password(provider, hub_port):
    auth = make_auth(provider.issuer)
    async with (
        serve_hub(auth, hub_port) as hub,
        httpx.AsyncClient(follow_redirects=True, timeout=20) as client,
    ):
        r = await browser_login(client, hub, "bob", "wrong")
        assert "Wrong username or password" in r.text
        r = await client.post(
            str(r.url).split("/interaction/")[0] + form_action(r.text),
            data={"prompt": "login", "login": "bob", "password": "bob-pw"},
        )
        if "Authorize" in r.text:
            r = await client.post(
                str(r.url).split("/interaction/")[0] + form_action(r.text),
                data={"prompt": "consent"},
            )
        result = r.json()["result"]
    assert (
        result["name"] == "bob" and result["groups"] == ["chemistry"] and result["admin"] is False
    )


async def test_not_allowed_group_refused(provider, hub_port):
    auth = make_auth(provider.issuer)
    auth.allowed_groups = {"physics"}
    async with (
        serve_hub(auth, hub_port) as hub,
        httpx.AsyncClient(follow_redirects=True, timeout=20) as client,
    ):
        r = await browser_login(client, hub, "bob", "bob-pw")
    assert r.status_code == 403 and "not on the list" in r.json()["error"]


async def test_refresh_and_expiry(provider, hub_port):
    auth = make_auth(provider.issuer)
    async with (
        serve_hub(auth, hub_port) as hub,
        httpx.AsyncClient(follow_redirects=True, timeout=20) as client,
    ):
        await browser_login(client, hub, "alice", "alice-pw")
        result = auth.context.complete_login.results[-1]
    # far from expiry: nothing to do
    assert await auth.refresh_user(result) is True
    assert await auth.spawn_environment(result) == {
        "OIDC_ACCESS_TOKEN": result.auth_state["access_token"]
    }
    # the access token has expired: refresh_user uses the refresh token
    old_access = result.auth_state["access_token"]
    result.auth_state["expires_at"] = time.time() - 5
    refreshed = await auth.refresh_user(result)
    assert refreshed is not True and refreshed is not False
    assert refreshed.name == "alice" and refreshed.groups == ["hub-admins", "physics"]
    new_state = refreshed.auth_state
    assert new_state["access_token"] != old_access
    assert new_state["expires_at"] > time.time() + 3000
    async with httpx.AsyncClient() as c:
        meta = await auth.metadata()
        ok = await c.get(
            meta["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {new_state['access_token']}"},
        )
        assert ok.status_code == 200 and ok.json()["sub"] == "alice"
    # a revoked/garbage refresh token forces a new login
    new_state["refresh_token"] = "garbage"
    new_state["expires_at"] = time.time() + 10
    assert await auth.refresh_user(refreshed) is False


async def test_forged_or_missing_state_is_a_clear_400(provider, hub_port):
    auth = make_auth(provider.issuer)
    async with serve_hub(auth, hub_port) as hub, httpx.AsyncClient(timeout=20) as client:
        r = await client.get(f"{hub}/hub/oauth_callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 400 and "could not be matched" in r.text
        r = await client.get(f"{hub}/hub/oauth_callback", params={"code": "x"})
        assert r.status_code == 400
        # a real login cookie but a state from elsewhere
        r = await client.get(f"{hub}/hub/oauth_login")
        assert r.status_code == 302
        r = await client.get(f"{hub}/hub/oauth_callback", params={"code": "x", "state": "other"})
        assert r.status_code == 400
        # IdP reports an error (person pressed "cancel")
        r = await client.get(f"{hub}/hub/oauth_login")
        state = httpx.URL(r.headers["location"]).params["state"]
        r = await client.get(
            f"{hub}/hub/oauth_callback", params={"error": "access_denied", "state": state}
        )
        assert r.status_code == 403 and "did not sign you in" in r.text
        # a right state but a made-up code: the token endpoint refuses -> 400, not 500
        r = await client.get(f"{hub}/hub/oauth_login")
        state = httpx.URL(r.headers["location"]).params["state"]
        r = await client.get(
            f"{hub}/hub/oauth_callback", params={"code": "made-up", "state": state}
        )
        assert r.status_code == 400 and "refused" in r.text


async def test_pkce_state_nonce_in_authorization_request(provider, hub_port):
    auth = make_auth(provider.issuer)
    async with serve_hub(auth, hub_port) as hub, httpx.AsyncClient(timeout=20) as client:
        r = await client.get(f"{hub}/hub/oauth_login")
    params = httpx.URL(r.headers["location"]).params
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["state"] and params["nonce"] and params["response_type"] == "code"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/hub/" in cookie


async def test_logout_url_is_the_providers_end_session(provider, hub_port):
    auth = make_auth(
        provider.issuer, post_logout_redirect_url=f"http://127.0.0.1:{hub_port}/hub/login"
    )
    await auth.startup()
    url = auth.logout_url("/hub/")
    assert url.startswith(provider.issuer + "/session/end?")
    async with httpx.AsyncClient(timeout=20) as client:
        r = await client.get(url)
    assert r.status_code == 200 and "<form" in r.text  # the provider's logout confirmation


async def test_idp_down_gives_clear_page_and_precise_log(caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    auth = make_auth(dead, http_timeout=2)
    with caplog.at_level(logging.WARNING):
        await auth.startup()  # must not raise: the hub keeps serving everyone else
        async with serve_hub(auth) as hub, httpx.AsyncClient(timeout=20) as client:
            r = await client.get(f"{hub}/hub/oauth_login")
    assert r.status_code == 503
    assert "the login service is unreachable, try again later" in r.text
    assert f"{dead}/.well-known/openid-configuration" in caplog.text
    assert "ConnectError" in caplog.text
