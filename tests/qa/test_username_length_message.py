"""QA: a too-long username is refused with the rule that really applies (1-64 characters
for the built-in authenticators), whichever endpoint and whatever the length."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("length", [65, 100, 300, 5000])
def test_bulk_and_single_create_name_the_real_limit(amalthea_hub, length):
    name = "a" * length
    with httpx.Client(base_url=amalthea_hub.api_url, headers=amalthea_hub.admin_headers,
                      timeout=30) as api:  # fmt: skip
        for r in (api.post("/users", json={"usernames": [name]}), api.post(f"/users/{name}")):
            assert r.status_code == 400, r.text
            message = r.json()["message"]
            assert "1-64 characters" in message and "255" not in message, message
