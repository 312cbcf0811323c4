"""``POST /users/NAME/tokens`` with ``{"auth": ...}`` checks a password, so it shares the login
form's throttle: failures there drain the same buckets, and a drained bucket answers 429."""

from __future__ import annotations

import httpx
import pytest

from amalthea.testing.session import HubSession

PASSWORD = "right-password"


@pytest.fixture
def hub(amalthea_hub_factory):
    return amalthea_hub_factory(
        config=f"""
        c.DummyAuthenticator.password = {PASSWORD!r}
        c.Amalthea.login_burst = 3
        c.Amalthea.login_attempts_per_minute = 0.5
    """
    )


def token_by_password(hub, name: str, password: str) -> httpx.Response:
    body = {"auth": {"username": name, "password": password}, "note": "script"}
    return httpx.post(f"{hub.api_url}/users/{name}/tokens", json=body, timeout=30)


def test_password_token_requests_are_throttled_like_the_form(hub):
    with HubSession(hub.url) as s:  # alice exists (a token needs a user row)
        assert s.login("alice", PASSWORD).status_code == 302
    r = token_by_password(hub, "alice", PASSWORD)
    assert r.status_code == 201 and r.json()["token"]

    for _ in range(3):
        assert token_by_password(hub, "alice", "guess").status_code == 403
    r = token_by_password(hub, "alice", PASSWORD)  # even the right password waits now
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert "Too many failed logins" in r.json()["message"]

    with HubSession(hub.url) as s:  # the form shares the buckets
        r = s.login("alice", PASSWORD)
        assert r.status_code == 429 and "Too many failed logins" in r.text


def test_form_failures_throttle_the_token_endpoint(hub):
    with HubSession(hub.url) as s:
        assert s.login("bob", PASSWORD).status_code == 302
    with HubSession(hub.url) as s:
        for _ in range(3):
            assert s.login("bob", "guess").status_code == 403
    r = token_by_password(hub, "bob", PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
