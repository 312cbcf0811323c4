"""QA: a user an admin added can log in with the ``local`` authenticator.

Sign-up is off by default, so the admin hands out a one-time "set your password" link
(POST /hub/api/users/NAME/password-link); the page enforces the password policy, the link
dies after use, and only ``admin:users`` may make one.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

from amalthea.testing.session import HubSession

pytestmark = pytest.mark.slow


def _xsrf(html: str) -> str:
    m = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def test_admin_password_link_lets_new_user_log_in(amalthea_hub_factory):
    hub = amalthea_hub_factory(authenticator="local", admin_name="root-admin",
                               config="c.LocalAuthenticator.lockout_attempts = 2")  # fmt: skip
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as api:
        assert api.post("/users", json={"usernames": ["carol", "dave"]}).status_code == 201
        r = api.post("/users/carol/password-link")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["expires_at"] and "/hub/set-password?code=" in body["url"]
        assert api.post("/users/nosuch/password-link").status_code == 404
        dave_token = api.post("/users/dave/tokens", json={}).json()["token"]
    link = urlsplit(body["url"])
    path = f"{link.path}?{link.query}"
    with HubSession(hub.url) as s:
        assert s.login("carol", "whatever password").status_code == 403  # no password yet
        page = s.client.get(path)
        assert page.status_code == 200 and "carol" in page.text
        form = {"_xsrf": _xsrf(page.text), "password": "short", "password2": "short"}
        r = s.client.post(path, data=form)
        assert r.status_code == 400 and "at least 8" in r.text  # policy applies
        good = "carol's own passphrase"
        r = s.client.post(path, data={**form, "password": good, "password2": good})
        assert r.status_code == 302, r.text
        assert s.client.get(path).status_code == 404  # one use only
    with HubSession(hub.url) as s:
        assert s.login("carol", good).status_code == 302
        assert s.api("GET", "/user").json()["name"] == "carol"
    # a locked account is unlocked by a fresh link
    with HubSession(hub.url) as s:
        for _ in range(2):
            assert s.login("carol", "wrong wrong wrong").status_code == 403
        assert s.login("carol", good).status_code == 429
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as api:
        url = urlsplit(api.post("/users/carol/password-link").json()["url"])
    path = f"{url.path}?{url.query}"
    with HubSession(hub.url) as s:
        page = s.client.get(path)
        newer = "a newer passphrase"
        r = s.client.post(path, data={"_xsrf": _xsrf(page.text), "password": newer,
                                      "password2": newer})  # fmt: skip
        assert r.status_code == 302
    with HubSession(hub.url) as s:
        assert s.login("carol", newer).status_code == 302
    # non-admins may not make links, not even for themselves
    r = httpx.post(f"{hub.api_url}/users/dave/password-link",
                   headers={"Authorization": f"token {dave_token}"})  # fmt: skip
    assert r.status_code == 403
    code = link.query.split("code=", 1)[1]
    assert code not in hub.log()  # a secret in a URL must not land in the log
