"""Spawn limits through the API: fair queue with positions, 429 only for Prefer: wait=0."""

from __future__ import annotations

import json
import sys
import time

import httpx
import pytest

from amalthea.testing.hub import start_hub

pytestmark = pytest.mark.slow
FAKE = [sys.executable, "-m", "amalthea.testing.fake_singleuser"]


def _events(c, user, stop_after):
    out = []
    with c.stream("GET", f"/users/{user}/server/progress", timeout=60) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data:"):
                ev = json.loads(line[5:])
                out.append(ev)
                if stop_after(ev):
                    break
    return out


def test_active_server_limit_queues_then_admits(tmp_path):
    hub = start_hub(
        tmp_path,
        config=f"""
c.Spawner.cmd = {FAKE!r}
c.Amalthea.active_server_limit = 1
c.Amalthea.allow_named_servers = True
c.Amalthea.named_server_limit_per_user = 1
""",
    )
    try:
        c = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=60)
        for u in ("first", "second", "third"):
            c.post(f"/users/{u}")
        assert c.post("/users/first/server").status_code == 201
        t0 = time.monotonic()
        r = c.post("/users/second/server")  # waits in the queue: API answers 202 after ~10 s
        assert r.status_code == 202 and time.monotonic() - t0 < 15
        events = _events(c, "second", lambda ev: "queue" in ev.get("message", ""))
        assert "position 1 in the queue" in events[-1]["message"]
        r = c.post("/users/third/server", headers={"Prefer": "wait=0"})
        assert r.status_code == 429 and 30 <= int(r.headers["Retry-After"]) <= 60
        assert set(r.json()) == {"status", "message"}
        assert c.delete("/users/first/server").status_code in (202, 204)
        events = _events(c, "second", lambda ev: ev.get("ready") or ev.get("failed"))
        assert events[-1].get("ready") is True
        # named server limit: waiting would not help, so 400 at once
        assert c.put("/users/third/servers/one", json={}).status_code == 201
        assert c.put("/users/third/servers/two", json={}).status_code == 400
    finally:
        hub.stop()
