"""Sharing end to end with a real JupyterLab: a shared user opens the owner's server and runs
code; a non-shared user cannot; revoking the share cuts access (protocol §12)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx
import pytest

from amalthea.testing.hub import start_hub
from amalthea.testing.session import HubSession, run_code

pytestmark = pytest.mark.slow


def _open(browser: HubSession, path: str) -> httpx.Response:
    """GET like a browser; confirm the hub's OAuth "Authorize access" page if it asks."""
    r = browser.client.get(path, follow_redirects=True)
    if r.status_code == 200 and "Authorize access" in r.text:
        fields = re.findall(r'name="([^"]+)" value="([^"]*)"', r.text)
        r = browser.client.post(
            str(r.url),
            content=urlencode(fields),
            follow_redirects=True,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    return r


def _accept(browser: HubSession, accept_url: str) -> httpx.Response:
    page = browser.client.get(accept_url)
    assert page.status_code == 200, page.text[:300]
    assert "Accept" in page.text
    code = re.search(r'name="code" value="([^"]+)"', page.text).group(1)
    return browser.client.post("/hub/accept-share", data={"code": code, "_xsrf": browser.xsrf})


def test_share_code_gives_access_and_revoke_cuts_it(tmp_path):
    hub = start_hub(tmp_path, config='c.Amalthea.extra_user_scopes = ["shares!user"]')
    try:
        with HubSession(hub.url, timeout=120) as alice, HubSession(hub.url) as bob, \
                HubSession(hub.url) as carol:  # fmt: skip
            for s, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
                assert s.login(name).status_code == 302
            events = alice.start_server(timeout=120)
            assert events[-1].get("ready"), events
            # alice shares her default server with a code; bob accepts it in the browser
            r = alice.api("POST", "/share-codes/alice/", json={"expires_in": 3600})
            assert r.status_code == 200, r.text
            r = _accept(bob, r.json()["accept_url"])
            assert r.status_code == 302 and r.headers["location"] == "/user/alice/"
            shared = bob.api("GET", "/users/bob/shared").json()
            assert [i["server"]["user"]["name"] for i in shared["items"]] == ["alice"]
            # bob opens alice's JupyterLab through the hub's OAuth, with his own identity
            lab = _open(bob, "/user/alice/lab")
            assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.text[:300]
            # ... and runs code with a token of his own (carrying the shared scope)
            bob_token = bob.api("POST", "/users/bob/tokens", json={}).json()["token"]
            _, out = run_code(
                hub.url,
                "/user/alice/",
                {"Authorization": f"token {bob_token}"},
                "6 * 7",
                timeout=120,
            )
            assert out == "42"
            # carol (not shared) cannot, neither by browser nor by token
            page = _open(carol, "/user/alice/lab")
            assert page.status_code == 403
            carol_token = carol.api("POST", "/users/carol/tokens", json={}).json()["token"]
            r = httpx.get(
                f"{hub.url}/user/alice/api/kernels",
                headers={"Authorization": f"token {carol_token}"},
            )
            assert r.status_code == 403
            # alice revokes: the hub drops bob's access at once
            assert alice.api("DELETE", "/shares/alice/").status_code == 204
            me = httpx.get(f"{hub.api_url}/user", headers={"Authorization": f"token {bob_token}"})
            assert "access:servers!server=alice/" not in me.json()["scopes"]
            fresh = bob.api("POST", "/users/bob/tokens", json={}).json()["token"]
            r = httpx.get(
                f"{hub.url}/user/alice/api/kernels", headers={"Authorization": f"token {fresh}"}
            )
            assert r.status_code == 403
            with HubSession(hub.url) as bob2:  # a new browser login of bob: OAuth refused
                bob2.login("bob")
                assert _open(bob2, "/user/alice/lab").status_code == 403
            assert alice.stop_server().status_code in (202, 204)
    finally:
        hub.stop()
