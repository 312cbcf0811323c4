"""Revocation takes effect on the next request, although identities are cached for seconds
(security/identity.py): revoked, expired and directly deleted tokens, deleted users, and the
cookie of a session that logged out."""

from __future__ import annotations

import contextlib
import sqlite3
import time

import httpx
import pytest

from amalthea.testing.session import HubSession


@pytest.fixture
def hub(amalthea_hub_factory):
    # a long cache makes "refused at once" mean "despite the cache", not "after it expired"
    return amalthea_hub_factory(config="c.Amalthea.identity_cache_seconds = 300")


def api(hub, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"token {token or hub.admin_token}"}
    return httpx.request(method, hub.api_url + path, headers=headers, timeout=30, **kw)


def new_token(hub, user: str, **body) -> tuple[str, str]:
    r = api(hub, "POST", f"/users/{user}/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()["token"], r.json()["id"]


def test_revoked_expired_and_deleted_tokens_are_refused_at_once(hub):
    assert api(hub, "POST", "/users", json={"usernames": ["bob", "carol"]}).status_code == 201
    token, token_id = new_token(hub, "bob")
    assert api(hub, "GET", "/users/bob", token).status_code == 200  # cached now
    assert api(hub, "DELETE", f"/users/bob/tokens/{token_id}").status_code == 204
    assert api(hub, "GET", "/users/bob", token).status_code == 403

    token, _ = new_token(hub, "bob", expires_in=1)
    assert api(hub, "GET", "/users/bob", token).status_code == 200
    time.sleep(1.5)
    assert api(hub, "GET", "/users/bob", token).status_code == 403

    # removed by something other than the API (a script on the database, another process)
    token, token_id = new_token(hub, "carol")
    assert api(hub, "GET", "/users/carol", token).status_code == 200
    with contextlib.closing(sqlite3.connect(hub.data_dir / "amalthea.sqlite")) as db:
        db.execute("DELETE FROM api_tokens WHERE id = ?", (int(token_id[1:]),))
        db.commit()
    assert api(hub, "GET", "/users/carol", token).status_code == 403


def test_a_deleted_users_token_and_session_are_refused_at_once(hub):
    with HubSession(hub.url) as s:
        assert s.login("dave").status_code == 302
        assert s.api("GET", "/user").json()["name"] == "dave"
        token, _ = new_token(hub, "dave")
        assert api(hub, "GET", "/user", token).json()["name"] == "dave"
        assert api(hub, "DELETE", "/users/dave").status_code == 204
        assert api(hub, "GET", "/user", token).status_code == 403
        assert s.api("GET", "/user").status_code == 403


def test_logout_kills_the_session(hub):
    with HubSession(hub.url) as s:
        assert s.login("erin").status_code == 302
        cookies = dict(s.client.cookies)
        assert s.api("GET", "/user").json()["name"] == "erin"
        s.logout()
    with httpx.Client(base_url=hub.url, cookies=cookies, timeout=30) as old:
        r = old.get("/hub/api/user", headers={"X-XSRFToken": s.xsrf})
        assert r.status_code == 403  # the old cookie is worthless
        assert old.get("/hub/home").status_code == 302  # sent to the login page
