"""QA: JSON bodies that Python's parser accepts or chokes on but no client should send.

Each must be a 400 ``{"status", "message"}``, never a 500 with a traceback in the hub log.
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow

BAD_BODIES = {
    "NaN literal": b'{"expires_in": NaN}',
    "-Infinity literal": b'{"expires_in": -Infinity}',
    "nested 100k deep": b"[" * 100_000 + b"]" * 100_000,
    "nested in a field": b'{"note": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "lone surrogate": b'{"note": "\\ud800"}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=list(BAD_BODIES))
def test_bad_json_body_is_a_400(amalthea_hub, body):
    hub = amalthea_hub
    r = httpx.post(
        f"{hub.api_url}/users/{hub.admin_name}/tokens",
        content=body,
        headers={**hub.admin_headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert r.json()["status"] == 400 and r.json()["message"]
    assert "Traceback" not in hub.log()
