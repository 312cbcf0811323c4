"""Proxy restarted by the hub when it dies; activity read from the proxy; server logs API."""

from __future__ import annotations

import os
import signal
import sys
import time

import httpx

from amalthea.testing.session import HubSession

FAKE = f'c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]\n'
FAST = "c.Amalthea.proxy_check_interval = 0.5\nc.Amalthea.last_activity_interval = 1\n"


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def test_dead_proxy_is_restarted_with_routes(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=FAKE + FAST)
    h = hub.admin_headers
    httpx.post(f"{hub.api_url}/users/ann", headers=h)
    assert httpx.post(f"{hub.api_url}/users/ann/server", headers=h).status_code == 201
    assert httpx.get(f"{hub.url}/user/ann/x", headers=h).json()["user"] == "ann"
    pid = int((hub.data_dir / "amalthea-proxy.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: httpx.get(f"{hub.url}/user/ann/x", headers=h).status_code == 200)
    assert int((hub.data_dir / "amalthea-proxy.pid").read_text()) != pid


def test_activity_from_proxy_and_server_logs(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=FAKE + FAST)
    with HubSession(hub.url) as s:
        s.login("bea")
        assert s.start_server()[-1]["ready"]
        before = httpx.get(f"{hub.api_url}/users/bea", headers=hub.admin_headers).json()
        time.sleep(1.1)
        httpx.get(f"{hub.url}/user/bea/ping", headers=hub.admin_headers)

        def moved():
            now = httpx.get(f"{hub.api_url}/users/bea", headers=hub.admin_headers).json()
            return now["servers"][""]["last_activity"] > before["servers"][""]["last_activity"]

        assert wait_for(moved, 15)
        r = s.api("GET", "/users/bea/server/logs", params={"lines": 5})
        assert r.status_code == 200
        assert (
            any("fake single-user server" in line for line in r.json()["lines"])
            or r.json()["lines"]
        )
    with HubSession(hub.url) as other:
        other.login("cid")
        assert other.api("GET", "/users/bea/server/logs").status_code in (403, 404)
