"""The OAuth provider and activity endpoint as a single-user server uses them."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx

from amalthea.testing.session import HubSession


def server_env(hub, name: str) -> dict[str, str]:
    return json.loads((hub.data_dir / "users" / name / "hub-env.json").read_text())


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(40)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize(s: HubSession, env: dict[str, str], challenge: str, **extra: str) -> httpx.Response:
    params = {
        "client_id": env["JUPYTERHUB_CLIENT_ID"],
        "redirect_uri": env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
        "response_type": "code",
        "state": "st4te",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return s.client.get("/hub/api/oauth2/authorize", params=params)


def test_env_contract_and_oauth_code_flow(fast_hub):
    hub = fast_hub
    with HubSession(hub.url) as s:
        s.login("alice")
        assert s.start_server()[-1]["ready"]
        env = server_env(hub, "alice")
        assert env["JUPYTERHUB_CLIENT_ID"] == "jupyterhub-user-alice"
        assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/alice/"
        assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/user/alice/oauth_callback"
        assert env["JUPYTERHUB_API_URL"] == hub.hub_url + "/hub/api"
        assert env["JUPYTERHUB_ACTIVITY_URL"] == hub.hub_url + "/hub/api/users/alice/activity"
        assert env["JUPYTERHUB_USER"] == "alice" and env["JUPYTERHUB_SERVER_NAME"] == ""
        assert (
            env["JUPYTERHUB_API_TOKEN"] == env["JPY_API_TOKEN"]
            and len(env["JUPYTERHUB_API_TOKEN"]) == 32
        )
        assert (
            json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"])[0] == "access:servers!server=alice/"
        )
        assert env["JUPYTERHUB_SERVICE_URL"].startswith("http://127.0.0.1:")
        assert env["JUPYTERHUB_BASE_URL"] == "/"

        verifier, challenge = pkce()
        r = authorize(s, env, challenge)
        assert r.status_code == 302, r.text
        loc = urlsplit(r.headers["location"])
        assert loc.path == "/user/alice/oauth_callback"
        q = parse_qs(loc.query)
        assert q["state"] == ["st4te"]
        form = {
            "client_id": env["JUPYTERHUB_CLIENT_ID"],
            "client_secret": env["JUPYTERHUB_API_TOKEN"],
            "grant_type": "authorization_code",
            "code": q["code"][0],
            "redirect_uri": env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
            "code_verifier": verifier,
        }
        r = httpx.post(f"{hub.hub_url}/hub/api/oauth2/token", data=form)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 1209600
        assert "access:servers!server=alice/" in body["scope"]
        r = httpx.get(
            f"{hub.hub_url}/hub/api/user",
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        model = r.json()
        assert model["name"] == "alice" and model["session_id"]
        assert "access:servers!server=alice/" in model["scopes"]
        # a code is single use
        r = httpx.post(f"{hub.hub_url}/hub/api/oauth2/token", data=form)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # wrong PKCE verifier
        _, challenge2 = pkce()
        code = parse_qs(urlsplit(authorize(s, env, challenge2).headers["location"]).query)["code"][
            0
        ]
        r = httpx.post(f"{hub.hub_url}/hub/api/oauth2/token", data={**form, "code": code})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # wrong client secret
        code = parse_qs(urlsplit(authorize(s, env, challenge).headers["location"]).query)["code"][0]
        r = httpx.post(
            f"{hub.hub_url}/hub/api/oauth2/token",
            data={**form, "code": code, "client_secret": "x" * 32},
        )
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        # bad authorize requests: HTML errors, never a redirect
        r = authorize(s, env, challenge, client_id="jupyterhub-user-nobody")
        assert r.status_code == 400 and "text/html" in r.headers["content-type"]
        r = authorize(s, env, challenge, redirect_uri="https://evil.example/cb")
        assert r.status_code == 400
        # logout revokes OAuth tokens issued in that browser session
        s.logout()
        r = httpx.get(
            f"{hub.hub_url}/hub/api/user",
            headers={"Authorization": f"token {body['access_token']}"},
        )
        # identity cache may hold it for a few seconds at most; the row is gone
        assert r.status_code in (200, 403)

    with HubSession(hub.url) as bob:
        bob.login("bob")
        r = authorize(bob, env, challenge)
        assert r.status_code == 403 and "permission" in r.text

    # anonymous authorize: to the login page with next
    r = httpx.get(
        f"{hub.url}/hub/api/oauth2/authorize", params={"client_id": env["JUPYTERHUB_CLIENT_ID"]}
    )
    assert r.status_code == 302 and r.headers["location"].startswith("/hub/login?next=")


def test_activity_and_server_token_scopes(fast_hub):
    hub = fast_hub
    with HubSession(hub.url) as s:
        s.login("alice")
        assert s.start_server()[-1]["ready"]
    env = server_env(hub, "alice")
    auth = {"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"}
    r = httpx.get(f"{hub.hub_url}/hub/api/user", headers=auth)
    assert r.status_code == 200
    scopes = r.json()["scopes"]
    assert "access:servers!server=alice/" in scopes and "users:activity!user=alice" in scopes
    ts = "2026-01-02T03:04:05.000006Z"
    body = {"last_activity": ts, "servers": {"": {"last_activity": ts}}}
    r = httpx.post(env["JUPYTERHUB_ACTIVITY_URL"], headers=auth, json=body)
    assert r.status_code == 200 and r.text == ""
    r = httpx.post(
        env["JUPYTERHUB_ACTIVITY_URL"],
        headers=auth,
        json={"servers": {"nope": {"last_activity": ts}}},
    )
    assert r.status_code == 400 and "No such server" in r.json()["message"]
    r = httpx.post(
        env["JUPYTERHUB_ACTIVITY_URL"], headers=auth, json={"last_activity": "yesterday"}
    )
    assert r.status_code == 400
    r = httpx.post(f"{hub.hub_url}/hub/api/users/bob/activity", headers=auth, json=body)
    assert r.status_code in (403, 404)
    # the server token cannot start servers or read other users
    r = httpx.post(f"{hub.hub_url}/hub/api/users/alice/servers/x", headers=auth)
    assert r.status_code in (400, 403)


def test_spawn_api_statuses(fast_hub):
    hub = fast_hub
    h = hub.admin_headers
    api = hub.api_url
    httpx.post(f"{api}/users/erin", headers=h)
    r = httpx.post(f"{api}/users/erin/server", headers=h)
    assert r.status_code == 201 and r.text == ""
    r = httpx.post(f"{api}/users/erin/server", headers=h)
    assert r.status_code == 400 and r.json()["message"] == "erin is already running"
    r = httpx.get(f"{api}/users/erin/server/progress", headers=h)
    assert r.status_code == 200 and '"ready": true' in r.text
    r = httpx.get(f"{hub.url}/user/erin/x", headers=h)
    assert r.status_code == 200 and r.json()["path"] == "/user/erin/x"
    r = httpx.post(f"{api}/users/erin/servers/gpu", headers=h)
    assert r.status_code == 400 and "Named servers are not enabled" in r.json()["message"]
    r = httpx.request("DELETE", f"{api}/users/erin/server", headers=h)
    assert r.status_code == 204
    r = httpx.request("DELETE", f"{api}/users/erin/server", headers=h)
    assert r.status_code == 204
    r = httpx.get(f"{api}/users/erin/server/progress", headers=h)
    assert r.status_code == 400 and "is not starting" in r.json()["message"]
    r = httpx.post(f"{api}/users/nobody-here/server", headers=h)
    assert r.status_code == 404
