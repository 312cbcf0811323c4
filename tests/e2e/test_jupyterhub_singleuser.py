"""The real ``jupyterhub-singleuser`` 6.1.1 from PyPI as ``c.Spawner.cmd`` under Amalthea.

Issue 3 promises that people can keep the single-user image they already run under JupyterHub.
The server comes from its own venv (jupyterhub 6.1.1 + JupyterLab + ipykernel, installed once
into the test cache by ``tests/singleuser/jupyterhub_install.py``), so nothing of Amalthea is on
its import path: everything it knows about the hub comes from the ``JUPYTERHUB_*`` environment
and the hub's HTTP API. A plain HTTP client plays the browser.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from amalthea.testing.hub import RunningHub, start_hub
from amalthea.testing.session import HubSession, execute, run_code

sys.path.insert(0, str(Path(__file__).parents[1] / "singleuser"))
from jupyterhub_install import ensure_jupyterhub_singleuser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    try:
        singleuser = ensure_jupyterhub_singleuser()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"could not install jupyterhub 6.1.1 + JupyterLab into the test cache: {exc}")
    # --allow-root is added by the local spawners when the hub runs as root
    running = start_hub(
        tmp_path_factory.mktemp("hub"),
        config=f"""
            c.Spawner.cmd = [{str(singleuser)!r}]
            c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "1"}}
            c.Spawner.start_timeout = 120
            c.Spawner.http_timeout = 120
            # the proxy's activity is not read during the test, so a server's last_activity
            # can only move through the single-user server's POST /hub/api/users/NAME/activity
            c.Amalthea.last_activity_interval = 3600
        """,
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alice(hub: RunningHub) -> Iterator[HubSession]:
    with HubSession(hub.url, timeout=120) as s:
        assert s.login("alice").status_code == 302
        events = s.start_server(timeout=150)
        assert events[-1].get("ready") is True, (events, hub.log()[-3000:])
        yield s
        s.stop_server()


def follow(client: httpx.Client, path: str, limit: int = 10) -> tuple[httpx.Response, list[str]]:
    """GET with redirects followed by hand, recording each Location (as a browser would)."""
    hops: list[str] = []
    r = client.get(path)
    while r.is_redirect and len(hops) < limit:
        hops.append(r.headers["location"])
        r = client.get(r.headers["location"])
    return r, hops


def server_model(hub: RunningHub, name: str) -> dict[str, Any]:
    r = httpx.get(f"{hub.api_url}/users/{name}", headers=hub.admin_headers, timeout=30)
    assert r.status_code == 200, r.text
    server: dict[str, Any] = r.json()["servers"][""]
    return server


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def test_lab_through_oauth_and_kernel_over_proxy(hub: RunningHub, alice: HubSession) -> None:
    r, hops = follow(alice.client, "/user/alice/lab")
    assert r.status_code == 200, (hops, r.text[:1000], hub.log()[-3000:])
    assert "JupyterLab" in r.text
    # the single-user server sends the browser to the hub's OAuth endpoint and back
    assert any(h.split("?")[0].endswith("/hub/api/oauth2/authorize") for h in hops), hops
    assert any("/user/alice/oauth_callback?code=" in h for h in hops), hops
    assert hops[-1].rstrip("?") == "/user/alice/lab"

    # a kernel with the browser's cookie + XSRF header, as JupyterLab creates it
    xsrf = alice.client.cookies.get("_xsrf", path="/user/alice/")
    assert xsrf, "jupyter_server sets _xsrf on its pages"
    r = alice.client.post("/user/alice/api/kernels", json={}, headers={"X-XSRFToken": xsrf})
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    # ... and its websocket through the proxy, authenticated by the same cookies
    cookie = "; ".join(f"{c.name}={c.value}" for c in alice.client.cookies.jar)
    ws_url = "ws" + hub.url.removeprefix("http") + f"/user/alice/api/kernels/{kernel}/channels"
    with connect(ws_url, additional_headers={"Cookie": cookie}, open_timeout=60) as ws:
        assert execute(ws, "1+1") == "2"

    # a hub API token (what scripts use) works for the same server: the server asks the hub
    r = httpx.post(
        f"{hub.api_url}/users/alice/tokens", headers=hub.admin_headers, json={"note": "e2e"}
    )
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"token {r.json()['token']}"}
    _, result = run_code(hub.url, "/user/alice/", auth, "sum(range(5))", kernel_id=kernel)
    assert result == "10"


def test_activity_reaches_the_hub(hub: RunningHub, alice: HubSession) -> None:
    before = server_model(hub, "alice").get("last_activity")
    time.sleep(1.1)  # timestamps must move past `before`
    ran_at = datetime.now(UTC)
    r = httpx.post(
        f"{hub.api_url}/users/alice/tokens", headers=hub.admin_headers, json={"note": "act"}
    )
    auth = {"Authorization": f"token {r.json()['token']}"}
    run_code(hub.url, "/user/alice/", auth, "1+1")
    deadline = time.monotonic() + 30
    seen = before
    while time.monotonic() < deadline:
        seen = server_model(hub, "alice").get("last_activity")
        if seen and seen != before and parse_ts(seen) >= ran_at.replace(microsecond=0):
            break
        time.sleep(0.5)
    else:
        pytest.fail(
            f"last_activity stayed {seen!r} (before {before!r}); hub log:\n{hub.log()[-3000:]}"
        )
    server_log = (hub.data_dir / "logs" / "alice.log").read_text(errors="replace")
    assert "Updating Hub with activity every 1 seconds" in server_log
    assert "Error notifying Hub of activity" not in server_log, server_log[-3000:]
    user = httpx.get(f"{hub.api_url}/users/alice", headers=hub.admin_headers).json()
    assert parse_ts(user["last_activity"]) >= parse_ts(seen)


def test_other_user_gets_403(hub: RunningHub, alice: HubSession) -> None:
    with HubSession(hub.url) as bob:
        assert bob.login("bob").status_code == 302
        r, hops = follow(bob.client, "/user/alice/lab")
        assert r.status_code == 403, (hops, r.status_code, r.text[:500])
        assert "/hub/api/oauth2/authorize" in hops[-1], hops
        r = httpx.post(
            f"{hub.api_url}/users/bob/tokens", headers=hub.admin_headers, json={"note": "bob"}
        )
        bob_auth = {"Authorization": f"token {r.json()['token']}"}
        for method, path in [
            ("GET", "api/status"),
            ("GET", "api/kernels"),
            ("POST", "api/kernels"),
        ]:
            r = httpx.request(method, f"{hub.url}/user/alice/{path}", headers=bob_auth)
            assert r.status_code in (302, 403), (method, path, r.status_code, r.text[:300])
            if r.status_code == 302:
                assert "/hub/api/oauth2/authorize" in r.headers["location"]
