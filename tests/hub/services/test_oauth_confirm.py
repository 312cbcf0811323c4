"""When the hub's OAuth authorize step shows a confirmation page (protocol §8.4).

No page for the user's own servers, for services with ``oauth_no_confirm``, or when an
earlier grant to the same client already covers the requested scopes; a page otherwise.
"""

from __future__ import annotations

import re
import sys
from urllib.parse import parse_qs, urlsplit

import httpx

from amalthea.testing.session import HubSession

CONFIG = f"""
c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]
c.Amalthea.extra_user_scopes = ["access:services"]
"""


def _authorize(s: HubSession, client_id: str) -> httpx.Response:
    return s.client.get(
        "/hub/api/oauth2/authorize",
        params={"client_id": client_id, "response_type": "code", "state": "st"},
    )


def _code(r: httpx.Response) -> str:
    assert r.status_code == 302, (r.status_code, r.text[:300])
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]


def _confirm(s: HubSession, page: httpx.Response) -> httpx.Response:
    """Press "Authorize" on the confirmation page, as the browser form would."""
    fields = re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)
    return s.client.post(str(page.url), data=dict(fields))


def test_confirmation_page_only_when_the_rules_require_it(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=CONFIG)
    admin = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers)
    for name, no_confirm in (("trusted", True), ("asks", False)):
        r = admin.post(f"/services/{name}", json={
            "url": "http://127.0.0.1:9/", "api_token": f"{name}-secret-token",
            "oauth_no_confirm": no_confirm,
        })  # fmt: skip
        assert r.status_code == 201, r.text
    with HubSession(hub.url) as alice, HubSession(hub.url) as bob:
        alice.login("alice")
        bob.login("bob")
        # oauth_no_confirm: straight back to the service with a code
        _code(_authorize(alice, "service-trusted"))
        # an ordinary service asks first
        page = _authorize(alice, "service-asks")
        assert page.status_code == 200 and "Authorize access" in page.text
        code = _code(_confirm(alice, page))
        r = httpx.post(hub.api_url + "/oauth2/token", data={
            "client_id": "service-asks", "client_secret": "asks-secret-token",
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": "/services/asks/oauth_callback",
        })  # fmt: skip
        assert r.status_code == 200, r.text
        # ... but once granted, a token for it covers the same scopes: no second page
        _code(_authorize(alice, "service-asks"))
        # bob never said yes to that service: he is asked
        assert "Authorize access" in _authorize(bob, "service-asks").text

        # servers: the owner is never asked, someone it is shared with is
        assert alice.start_server()[-1]["ready"]
        _code(_authorize(alice, "jupyterhub-user-alice"))
        r = admin.post("/shares/alice/", json={"user": "bob"})
        assert r.status_code in (200, 201), r.text
        page = _authorize(bob, "jupyterhub-user-alice")
        assert page.status_code == 200 and "Authorize access" in page.text
        _code(_confirm(bob, page))
    # revoking the grant (deleting alice's tokens for the client) brings the page back
    tokens = admin.get("/users/alice/tokens").json()["api_tokens"]
    for t in tokens:
        if "service asks" in t["note"]:
            assert admin.delete(f"/users/alice/tokens/{t['id']}").status_code == 204
    with HubSession(hub.url) as alice:
        alice.login("alice")
        assert "Authorize access" in _authorize(alice, "service-asks").text
