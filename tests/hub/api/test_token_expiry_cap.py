"""``c.Amalthea.token_expires_in_max_seconds`` caps API-created tokens (protocol §3.4)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from amalthea.testing.session import HubSession


def _lifetime(model: dict) -> timedelta:
    created = datetime.fromisoformat(model["created"].rstrip("Z"))
    return datetime.fromisoformat(model["expires_at"].rstrip("Z")) - created


def test_token_lifetime_cap(amalthea_hub_factory):
    hub = amalthea_hub_factory(config="c.Amalthea.token_expires_in_max_seconds = 3600\n")
    admin = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers)
    assert admin.post("/users/carol").status_code == 201
    # no expiry asked: the token gets the cap instead of living forever
    r = admin.post("/users/carol/tokens", json={"note": "no expiry"})
    assert r.status_code == 201, r.text
    assert timedelta(seconds=3590) <= _lifetime(r.json()) <= timedelta(seconds=3610)
    r = admin.post("/users/carol/tokens", json={"expires_in": None})
    assert r.status_code == 201 and r.json()["expires_at"] is not None
    # within the cap: as asked
    r = admin.post("/users/carol/tokens", json={"expires_in": 600})
    assert r.status_code == 201
    assert _lifetime(r.json()) <= timedelta(seconds=610)
    r = admin.post("/users/carol/tokens", json={"expires_in": 3600})
    assert r.status_code == 201
    # above it: a clear 400 naming the limit and the setting
    r = admin.post("/users/carol/tokens", json={"expires_in": 3601})
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == 400
    assert "3600" in body["message"] and "token_expires_in_max_seconds" in body["message"]
    # the token page offers no lifetime above the cap, and no "Never"
    with HubSession(hub.url) as browser:
        browser.login("carol")
        page = browser.client.get("/hub/token")
    assert page.status_code == 200
    assert 'value="3600"' in page.text and 'value="86400"' not in page.text
    assert ">Never<" not in page.text


def test_no_cap_by_default(amalthea_hub_factory):
    hub = amalthea_hub_factory()
    admin = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers)
    r = admin.post(f"/users/{hub.admin_name}/tokens", json={})
    assert r.status_code == 201 and r.json()["expires_at"] is None
    r = admin.post(f"/users/{hub.admin_name}/tokens", json={"expires_in": 10 * 86400})
    assert r.status_code == 201
