"""End to end over HTTP: real hub, proxy, single-user servers and kernels, on loopback."""

from __future__ import annotations

import httpx
import pytest

from amalthea.testing.session import HubSession, run_code

pytestmark = pytest.mark.slow


def user_token(hub, name: str) -> str:
    r = httpx.post(
        f"{hub.api_url}/users/{name}/tokens", headers=hub.admin_headers, json={"note": "e2e"}
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]


def test_login_spawn_kernel_stop_logout(amalthea_hub):
    hub = amalthea_hub
    with HubSession(hub.url) as s:
        r = s.login("alice")
        assert r.status_code == 302
        assert "jupyterhub-hub-login" in r.headers.get("set-cookie", "")
        events = s.start_server()
        # A spawn that finishes before the stream is opened yields only the final event
        # (as JupyterHub's progress API does); otherwise the stream starts at the request.
        assert len(events) == 1 or events[0]["message"] == "Server requested", events
        assert events[-1]["ready"] is True and events[-1]["url"] == "/user/alice/"
        # the browser path: server -> OAuth authorize at the hub -> callback -> cookie
        r = s.open_server("lab")
        assert r.status_code == 200 and "JupyterLab" in r.text
        assert [h.status_code for h in r.history] == [302, 302, 302, 302]
        r = s.open_server("api/status")
        assert r.status_code == 200, r.text
        assert "last_activity" in r.json()
        token = user_token(hub, "alice")
        _, result = run_code(hub.url, "/user/alice/", {"Authorization": f"token {token}"}, "1+1")
        assert result == "2"
        r = s.stop_server()
        assert r.status_code in (202, 204)
        r = httpx.get(
            f"{hub.url}/user/alice/api/status",
            headers={"Authorization": f"token {token}"},
            follow_redirects=True,
        )
        assert r.status_code == 424
        assert "no longer running" in r.json()["message"]
        r = s.logout()
        assert r.status_code == 302 and r.headers["location"].endswith("/hub/login")
        r = s.client.get("/hub/home")
        assert r.status_code == 302 and "/hub/login" in r.headers["location"]


def test_two_users_cannot_reach_each_other(amalthea_hub):
    hub = amalthea_hub
    with HubSession(hub.url) as alice, HubSession(hub.url) as bob:
        assert alice.login("alice").status_code == 302
        assert bob.login("bob").status_code == 302
        for s in (alice, bob):
            assert s.api("POST", f"/users/{s.name}/server").status_code in (201, 202)
        assert alice.progress()[-1]["ready"]
        assert bob.progress()[-1]["ready"]
        assert alice.open_server("lab").status_code == 200
        assert alice.open_server("api/status").status_code == 200
        # bob's browser on alice's server: the hub refuses to authorize him
        r = bob.client.get("/user/alice/lab", follow_redirects=True)
        assert r.status_code == 403
        assert "/hub/api/oauth2/authorize" in str(r.url)
        assert "permission" in r.text
        bob_token = user_token(hub, "bob")
        bob_auth = {"Authorization": f"token {bob_token}"}
        for method, path in [
            ("GET", "api/status"),
            ("GET", "api/contents"),
            ("GET", "api/kernels"),
            ("POST", "api/kernels"),
        ]:
            r = httpx.request(method, f"{hub.url}/user/alice/{path}", headers=bob_auth, json=None)
            assert r.status_code in (302, 403), (path, r.status_code)
            if r.status_code == 302:
                assert "/hub/api/oauth2/authorize" in r.headers["location"]
        # and bob cannot start, stop or watch alice's server through the hub API
        assert bob.api("DELETE", "/users/alice/server").status_code in (403, 404)
        assert httpx.post(f"{hub.api_url}/users/alice/server", headers=bob_auth).status_code in (
            403,
            404,
        )
        assert alice.stop_server().status_code in (202, 204)
        assert bob.stop_server().status_code in (202, 204)


def test_hub_restart_keeps_kernel_websocket(amalthea_hub):
    from websockets.sync.client import connect

    from amalthea.testing.session import execute

    hub = amalthea_hub
    with HubSession(hub.url) as s:
        s.login("carol")
        assert s.start_server()[-1]["ready"]
        token = user_token(hub, "carol")
        auth = {"Authorization": f"token {token}"}
        kid, result = run_code(hub.url, "/user/carol/", auth, "1+1")
        assert result == "2"
        url = "ws" + hub.url.removeprefix("http") + f"/user/carol/api/kernels/{kid}/channels"
        with connect(url, additional_headers=auth) as ws:
            assert execute(ws, "x = 20") == ""
            hub.restart()  # SIGHUP: hub exits, proxy and server keep running, hub starts again
            assert execute(ws, "x + 22") == "42"
        # the new hub found the server again
        r = httpx.post(f"{hub.api_url}/users/carol/server", headers=hub.admin_headers)
        assert r.status_code == 400 and "already running" in r.json()["message"]
        r = httpx.get(f"{hub.url}/user/carol/api/status", headers=auth)
        assert r.status_code == 200


def test_spawn_failure_reports_log_tail(amalthea_hub_factory):
    hub = amalthea_hub_factory(
        config="""
        import sys
        c.Spawner.cmd = [sys.executable, "-c", "print('boom-marker-123'); raise SystemExit(3)"]
    """
    )
    with HubSession(hub.url) as s:
        s.login("dave")
        r = s.api("POST", "/users/dave/server")
        assert r.status_code == 500
        assert "Spawn failed" in r.json()["message"]
        events = s.progress()
        assert events[-1]["failed"] is True
        assert any("boom-marker-123" in line for line in events[-1]["log_tail"])
        r = s.client.get("/hub/spawn-pending/dave")
        assert r.status_code == 500
        assert "boom-marker-123" in r.text and "exited with status 3" in r.text
    assert httpx.get(hub.api_url).status_code == 200
    r = httpx.get(f"{hub.api_url}/user", headers=hub.admin_headers)
    assert r.status_code == 200
