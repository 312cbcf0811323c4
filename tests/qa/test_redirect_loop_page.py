"""QA: a redirect loop to a running server (proxy route missing or lagging for long) ends in
a clear page that says what to do, logged once as a warning, without a traceback."""

from __future__ import annotations

import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow
FAKE = f'c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]\n'


def test_redirect_loop_is_a_clear_503_without_traceback(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=FAKE)
    name = hub.admin_name
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as api:
        assert api.post(f"/users/{name}/server").status_code in (201, 202)
        deadline = time.monotonic() + 60
        while not api.get(f"/users/{name}").json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, "server not ready in 60 s"
            time.sleep(0.2)
    with httpx.Client(base_url=hub.hub_url, headers=hub.admin_headers, timeout=30) as c:
        for n in ("4", "17"):
            r = c.get(f"/hub/user/{name}/lab", params={"redirects": n})
            assert r.status_code == 503, r.status_code
            assert "redirect loop" in r.text.lower() and "proxy" in r.text, r.text
    log = hub.log()
    assert "Traceback" not in log and "tornado.application" not in log, log[-3000:]
    assert log.count("redirect loop") == 2, log[-3000:]  # once per request
