"""QA: ``/hub/user/NAME/`` with a hand-edited ``redirects`` counter is a clear answer, not a 500.

The hub adds ``?redirects=N`` when it bounces a request back to a running server whose proxy
route lags. The value comes from the URL, so anyone can send garbage in it.
"""

from __future__ import annotations

import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow
FAKE = f'c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]\n'


def _wait_running(c: httpx.Client, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if c.get(f"/users/{name}").json()["servers"].get("", {}).get("ready"):
            return
        time.sleep(0.2)
    raise AssertionError(f"server of {name} not ready in 60 s")


def test_garbage_redirects_counter_is_not_a_500(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=FAKE)
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as api:
        assert api.post(f"/users/{hub.admin_name}/server").status_code in (201, 202)
        _wait_running(api, hub.admin_name)
    with httpx.Client(base_url=hub.hub_url, headers=hub.admin_headers, timeout=30) as c:
        for bad in ("abc", "1.5", "-1", "9" * 40):
            r = c.get(f"/hub/user/{hub.admin_name}/lab", params={"redirects": bad})
            assert r.status_code < 500 or "Redirect loop" in r.text, (bad, r.status_code, r.text)
    assert "invalid literal" not in hub.log()
