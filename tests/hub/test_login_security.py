"""Login, sessions, XSRF and bad input: clear pages or JSON, never a 500."""

from __future__ import annotations

import re

import httpx
import pytest

from amalthea.testing.session import HubSession


def setup_link(hub) -> str:
    m = re.search(r"(/hub/setup\?code=\S+)", hub.log())
    assert m, hub.log()
    return m.group(1)


@pytest.fixture
def local_hub(amalthea_hub_factory):
    return amalthea_hub_factory(
        authenticator="local",
        admin_name="root-admin",
        config="""
        c.LocalAuthenticator.allow_signup = True
        c.LocalAuthenticator.lockout_attempts = 3
        c.Amalthea.login_burst = 100
    """,
    )


def test_first_run_setup_then_password_login(local_hub):
    hub = local_hub
    link = setup_link(hub)
    with HubSession(hub.url) as s:
        r = s.client.get(link)
        assert r.status_code == 200 and "Create the administrator" in r.text
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', r.text).group(1)
        form = {
            "_xsrf": xsrf,
            "username": "boss",
            "password": "correct horse battery",
            "password2": "x",
        }
        r = s.client.post(link, data=form)
        assert r.status_code == 400 and "differ" in r.text
        r = s.client.post(link, data={**form, "password": "short", "password2": "short"})
        assert r.status_code == 400 and "at least 8" in r.text
        r = s.client.post(link, data={**form, "password2": "correct horse battery"})
        assert r.status_code == 302 and r.headers["location"] == "/hub/home"
        assert s.client.get(link).status_code == 404  # one time only
        s.refresh_xsrf()
        r = s.api("GET", "/user")
        assert r.json()["name"] == "boss" and r.json()["admin"] is True
    with HubSession(hub.url) as s:
        assert s.login("boss", "wrong password!").status_code == 403
        r = s.login("nobody-at-all", "whatever123")
        assert r.status_code == 403 and "Invalid username or password" in r.text
        r = s.login("boss", "correct horse battery")
        assert r.status_code == 302
        # change password page
        page = s.client.get("/hub/change-password")
        assert page.status_code == 200
        r = s.client.post(
            "/hub/change-password",
            data={
                "_xsrf": s.xsrf,
                "password": "nope",
                "new_password": "another good one",
                "new_password2": "another good one",
            },
        )
        assert r.status_code == 403
        r = s.client.post(
            "/hub/change-password",
            data={
                "_xsrf": s.xsrf,
                "password": "correct horse battery",
                "new_password": "another good one",
                "new_password2": "another good one",
            },
        )
        assert r.status_code == 200 and "was changed" in r.text
    with HubSession(hub.url) as s:
        assert s.login("boss", "another good one").status_code == 302


def test_lockout_and_signup_approval(local_hub):
    hub = local_hub
    with HubSession(hub.url) as s:
        xsrf = s.login_form()
        r = s.client.post(
            "/hub/signup",
            data={
                "_xsrf": xsrf,
                "username": "newbie",
                "password": "a fine password",
                "password2": "a fine password",
            },
        )
        assert r.status_code == 200 and "must approve" in r.text
        r = s.login("newbie", "a fine password")
        assert r.status_code == 403 and "approval" in r.text
        for _ in range(3):
            assert s.login("newbie", "bad password 1").status_code == 403
        r = s.login("newbie", "a fine password")
        assert r.status_code == 429 and "locked" in r.text


@pytest.mark.parametrize("name", ["../etc", "Ünïcødé☃", "a" * 300, "", " ", "bad/name", "x\x00y"])
def test_invalid_usernames_are_refused_cleanly(amalthea_hub, name):
    with HubSession(amalthea_hub.url) as s:
        r = s.login(name)
        assert r.status_code in (400, 403), r.status_code
        assert "text/html" in r.headers["content-type"]
        assert "jupyterhub-hub-login" not in r.headers.get("set-cookie", "")


def test_xsrf_and_session_forgery(amalthea_hub):
    hub = amalthea_hub
    with HubSession(hub.url) as s:
        s.login_form()
        r = s.client.post("/hub/login", data={"username": "mallory", "_xsrf": "f" * 40})
        assert r.status_code == 403 and "forged" in r.text
        r = s.client.post("/hub/login", data={"username": "mallory"})
        assert r.status_code == 403
    with HubSession(hub.url) as s:
        assert s.login("alice").status_code == 302
        # cookie-authenticated API call without the XSRF token
        r = s.client.post(
            "/hub/api/users/alice/server", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 403 and r.json()["status"] == 403
        r = s.client.get("/hub/api/user", headers={"Sec-Fetch-Mode": "cors"})
        assert r.status_code == 403
        r = s.client.get("/hub/api/user", headers={"Sec-Fetch-Mode": "cors", "X-XSRFToken": s.xsrf})
        assert r.status_code == 200 and r.json()["name"] == "alice"
        # a cross-site form post (not JSON) is not cookie-authenticated
        r = s.client.post(
            "/hub/api/users/alice/server", data={"x": "1"}, headers={"X-XSRFToken": s.xsrf}
        )
        assert r.status_code == 403
    # forged / expired session cookie: treated as logged out
    c = httpx.Client(
        base_url=hub.url, cookies={"jupyterhub-hub-login": "2|1:0|10:1700000000|forged"}
    )
    r = c.get("/hub/home")
    assert r.status_code == 302 and "/hub/login" in r.headers["location"]
    r = c.get("/hub/api/user")
    assert r.status_code == 403 and r.json() == {"status": 403, "message": None}


def test_api_errors_are_json(amalthea_hub):
    hub = amalthea_hub
    r = httpx.get(f"{hub.api_url}/no/such/thing", headers=hub.admin_headers)
    assert r.status_code == 404 and r.json() == {"status": 404, "message": None}
    r = httpx.get(f"{hub.api_url}/user", headers={"Authorization": "token " + "0" * 32})
    assert r.status_code == 403
    r = httpx.get(f"{hub.api_url}/user", params={"token": hub.admin_token})
    assert r.status_code == 403
    r = httpx.post(
        f"{hub.api_url}/users/admin/server", headers=hub.admin_headers, content=b"{not json"
    )
    assert r.status_code == 400 and "Invalid JSON" in r.json()["message"]
    r = httpx.get(f"{hub.api_url}/info", headers=hub.admin_headers)
    assert r.status_code == 200 and r.json()["version"] == "6.1.1"
    r = httpx.get(hub.api_url)
    assert r.headers["x-jupyterhub-version"] == "6.1.1"


def test_pages_and_redirects(amalthea_hub):
    hub = amalthea_hub
    c = httpx.Client(base_url=hub.url)
    r = c.get("/")
    assert r.status_code == 302 and r.headers["location"] == "/hub/"
    r = c.get("/hub/")
    assert r.status_code == 302 and r.headers["location"].startswith("/hub/login?next=")
    r = c.get("/hub/no-such-page")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    r = c.get("/hub/error/503")
    assert r.status_code == 200 and "503" in r.text
    with HubSession(hub.url) as s:
        xsrf = s.login_form()
        r = s.client.post(
            "/hub/login?next=//evil.example/x", data={"username": "alice", "_xsrf": xsrf}
        )
        assert r.status_code == 302 and "evil" not in r.headers["location"]
        s.name = "alice"
        s.refresh_xsrf()
        r = s.client.get("/hub/login?next=https://evil.example/")
        assert r.status_code == 302 and "evil" not in r.headers["location"]
        r = s.client.get("/hub/user-redirect/lab/tree/x.ipynb?foo=1")
        assert r.status_code == 302
        assert (
            r.headers["location"]
            == "/hub/spawn/alice?next=%2Fuser%2Falice%2Flab%2Ftree%2Fx.ipynb%3Ffoo%3D1"
        )
        r = s.client.get("/hub/user/alice/lab")
        assert r.status_code == 424 and "Start the server" in r.text
        r = s.client.get("/hub/user/alice/api/contents")
        assert r.status_code == 424 and "no longer running" in r.json()["message"]
        r = s.client.get("/hub/user/bob/lab")
        assert r.status_code == 404
        for page in ("/hub/home", "/hub/token", "/hub/spawn-pending/alice"):
            assert s.client.get(page).status_code == 200, page
