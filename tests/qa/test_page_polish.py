"""QA polish: human-readable times on the token page; /hub/error/CODE says something for every
code the proxy sends and treats nonsense codes as "not found"; no request id when nothing
failed on the hub."""

from __future__ import annotations

import re

import httpx

from amalthea.testing.session import HubSession


def test_token_page_shows_readable_times(amalthea_hub):
    with HubSession(amalthea_hub.url) as s:
        assert s.login("alice").status_code == 302
        r = s.api("POST", "/users/alice/tokens", json={"note": "cli", "expires_in": 3600})
        assert r.status_code == 201
        page = s.client.get("/hub/token").text
        row = page[page.index("<td>cli</td>") :].split("</tr>", 1)[0]
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row), row
        assert not re.search(r">[^<]*T\d\d:\d\d:\d\d", row), row  # no raw ISO as visible text


def test_proxy_error_pages(amalthea_hub):
    with httpx.Client(base_url=amalthea_hub.hub_url, timeout=30) as c:
        for code in (424, 502, 503, 504, 500):
            r = c.get(f"/hub/error/{code}")
            assert r.status_code == 200
            assert f"<h1>{code} " in r.text and 'id="error-message"' in r.text, (code, r.text)
            assert 'id="request-id"' not in r.text  # the hub did not fail: nothing to trace
        for code in ("999", "200", "0"):
            r = c.get(f"/hub/error/{code}")
            assert "<h1>404 " in r.text and 'id="error-message"' in r.text, (code, r.text)
