"""OIDC through the real hub: login button -> real provider -> callback -> logged in; group sync
(admin-made groups untouched), encrypted auth_state, refresh, access token in the server's env."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from oidc_hub import oidc_hub, oidc_login

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not shutil.which("node"), reason="needs node + npm"),
]


def api(hub, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, hub.api_url + path, headers=hub.admin_headers, timeout=30, **kw)


def stored_state(hub, name: str) -> bytes:
    with sqlite3.connect(hub.data_dir / "amalthea.sqlite") as db:
        (blob,) = db.execute(
            "SELECT encrypted_auth_state FROM users WHERE name=?", (name,)
        ).fetchone()
    return blob


def test_oidc_login_groups_refresh_and_spawn_env(tmp_path):
    extra = """
c.Amalthea.redirect_to_server = False
c.Authenticator.auth_refresh_age = 1
c.OIDCAuthenticator.refresh_before_expiry = 100000  # every refresh_user call refreshes tokens
"""
    with oidc_hub(tmp_path, extra) as (hub, _provider):
        # admin-made groups, before anyone logs in: "teachers" with alice; "chemistry" empty
        assert api(hub, "POST", "/users/alice").status_code == 201
        assert api(hub, "POST", "/groups/teachers", json={"users": ["alice"]}).status_code == 201
        assert api(hub, "POST", "/groups/chemistry").status_code == 201

        with httpx.Client(timeout=30) as alice, httpx.Client(timeout=30) as bob:
            r = oidc_login(alice, hub, "alice", "alice-pw")
            assert r.status_code == 200 and str(r.url) == f"{hub.url}/hub/home", r.url
            assert any("/hub/oauth_callback" in str(h.url) for h in r.history)
            r = oidc_login(bob, hub, "bob", "bob-pw")
            assert str(r.url) == f"{hub.url}/hub/home"

            model = api(hub, "GET", "/users/alice").json()
            assert model["admin"] is True  # admin_groups = {"hub-admins"}
            assert sorted(model["groups"]) == ["hub-admins", "physics", "teachers"]
            bob_model = api(hub, "GET", "/users/bob").json()
            assert bob_model["admin"] is False
            # "chemistry" exists and was made by an admin: the IdP does not get to fill it
            assert bob_model["groups"] == []
            assert api(hub, "GET", "/groups/chemistry").json()["users"] == []

            # auth_state is encrypted at rest
            blob = stored_state(hub, "alice")
            assert blob and b"access_token" not in blob and blob.startswith(b"gAAAAA")
            state = model.get("auth_state") or api(hub, "GET", "/users/alice").json()["auth_state"]
            first_token = state["access_token"]

            # refresh on a cookie request once auth_refresh_age has passed
            time.sleep(1.2)
            assert alice.get(f"{hub.url}/hub/home").status_code == 200
            refreshed = api(hub, "GET", "/users/alice").json()["auth_state"]
            assert refreshed["access_token"] != first_token
            assert refreshed["refresh_token"]

            # spawn: refreshed before start, the access token lands in the server's environment
            r = api(hub, "POST", "/users/alice/server")
            assert r.status_code in (201, 202), r.text
            deadline = time.monotonic() + 180  # generous: CI machines are shared
            while time.monotonic() < deadline:
                servers = api(hub, "GET", "/users/alice").json()["servers"]
                if servers.get("", {}).get("ready"):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"server not ready: {servers}\n{hub.log()[-3000:]}")
            at_spawn = api(hub, "GET", "/users/alice").json()["auth_state"]["access_token"]
            assert at_spawn != refreshed["access_token"]  # refresh_pre_spawn
            env = server_environ(hub, "alice")
            assert env.get("OIDC_ACCESS_TOKEN") == at_spawn
            assert env.get("JUPYTERHUB_USER") == "alice"
            assert api(hub, "DELETE", "/users/alice/server").status_code in (202, 204)


def server_environ(hub, name: str) -> dict[str, str]:
    import json

    with sqlite3.connect(hub.data_dir / "amalthea.sqlite") as db:
        (raw,) = db.execute(
            "SELECT s.spawner_state FROM servers s JOIN users u ON u.id = s.user_id "
            "WHERE u.name = ? AND s.name = ''",
            (name,),
        ).fetchone()
    pid = json.loads(raw)["pid"]
    data = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in data if b"=" in item)


def test_oidc_refusals_reach_the_admin_log(tmp_path):
    with oidc_hub(tmp_path, "c.OIDCAuthenticator.allowed_groups = {'physics'}") as (hub, _p):
        with httpx.Client(timeout=30) as bob:
            r = oidc_login(bob, hub, "bob", "bob-pw")
        assert r.status_code == 403 and "not on the list" in r.text
        assert "not allowed by allow/block lists" in hub.log()
        assert api(hub, "GET", "/users/bob").status_code == 404
