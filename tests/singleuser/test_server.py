"""amalthea-singleuser as a real process against the fake hub: auth, OAuth, activity."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from conftest import SINGLEUSER, RunningServer, page_config, singleuser_env
from fakehub import FakeHub
from kernelclient import run_code

ALICE = {
    "name": "alice",
    "kind": "user",
    "groups": [],
    "admin": False,
    "user_info": None,
    "scopes": ["access:servers!server=alice/", "read:users:name!user=alice"],
}
BOB = {
    "name": "bob",
    "kind": "user",
    "groups": [],
    "admin": False,
    "scopes": ["access:servers!server=bob/", "read:users:name!user=bob"],
}
ADMIN = {"name": "root", "kind": "user", "groups": [], "admin": True, "scopes": ["access:servers"]}
CAROL = {
    "name": "carol",
    "kind": "user",
    "groups": ["lab"],
    "admin": False,
    "scopes": ["access:servers!group=lab"],
}


@pytest.fixture(scope="module")
def tokens(fake_hub: FakeHub) -> dict[str, dict[str, Any]]:
    mapping = {"alice-token": ALICE, "bob-token": BOB, "admin-token": ADMIN, "carol-token": CAROL}
    fake_hub.state.tokens.update(mapping)
    fake_hub.state.groups["alice"] = ["lab"]
    return mapping


def hub_login(
    fake_hub: FakeHub,
    server: RunningServer,
    client: httpx.Client,
    user: dict[str, Any] = ALICE,
    path: str = "lab",
) -> httpx.Response:
    """Walk a browser through the OAuth dance; returns the final response."""
    fake_hub.state.browser_user = user
    r = client.get(server.url + path)
    assert r.status_code == 302 and "/login?next=" in r.headers["location"]
    r = client.get(f"http://127.0.0.1:{server.port}{r.headers['location']}")
    assert r.status_code == 302
    r = client.get(fake_hub.url + r.headers["location"])  # the hub's authorize endpoint
    assert r.status_code == 302, r.text
    return client.get(f"http://127.0.0.1:{server.port}{r.headers['location']}")


def test_missing_environment_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "JUPYTERHUB_USER": "alice"}
    proc = subprocess.run([SINGLEUSER], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "JUPYTERHUB_SERVICE_URL" in proc.stderr and "JUPYTERHUB_API_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_hub_stops_startup(fake_hub: FakeHub, tmp_path: Path) -> None:
    env = singleuser_env(fake_hub, tmp_path, JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api")
    proc = subprocess.run(
        [
            SINGLEUSER,
            "--allow-root",
            "--HubExtension.hub_connect_attempts=2",
            "--HubExtension.hub_connect_max_delay=0.1",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 1
    assert "did not answer after 2 attempts" in proc.stderr
    assert "JUPYTERHUB_API_URL" in proc.stderr


def test_listens_on_a_unix_socket(fake_hub: FakeHub, tmp_path: Path) -> None:
    sock = tmp_path / "alice.sock"
    url = f"http+unix://{quote(str(sock), safe='')}/user/alice/"
    env = singleuser_env(fake_hub, tmp_path, JUPYTERHUB_SERVICE_URL=url)
    proc = subprocess.Popen(
        [SINGLEUSER, "--allow-root"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)))
        deadline = time.monotonic() + 60
        while True:
            try:
                r = client.get("http://localhost/user/alice/api")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200 and "version" in r.json()
        assert r.headers["x-jupyterhub-version"] == "6.1.1"
        assert client.get("http://localhost/user/alice/api/status").status_code == 403
    finally:
        proc.terminate()
        proc.wait(15)


def test_reports_location_and_headers(fake_hub: FakeHub, alice_server: RunningServer) -> None:
    report = fake_hub.state.reports[0]
    assert report == {"ip": "127.0.0.1", "port": alice_server.port} and alice_server.port > 0
    r = httpx.get(alice_server.url + "api/status")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-jupyterhub-version"] == "6.1.1"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_browser_is_sent_to_hub_oauth_with_pkce(
    fake_hub: FakeHub, alice_server: RunningServer
) -> None:
    with httpx.Client() as client:
        r = client.get(alice_server.url + "tree?x=1")
        assert r.status_code == 302
        assert r.headers["location"] == "/user/alice/login?next=%2Fuser%2Falice%2Ftree%3Fx%3D1"
        r = client.get(f"http://127.0.0.1:{alice_server.port}{r.headers['location']}")
    assert r.status_code == 302
    url = urlsplit(r.headers["location"])
    assert url.path == "/hub/api/oauth2/authorize"
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q["client_id"] == "jupyterhub-user-alice"
    assert q["redirect_uri"] == "/user/alice/oauth_callback"
    assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43 and len(q["state"]) >= 16
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("jupyterhub-user-alice-oauth-state-")
    assert "HttpOnly" in cookie and "Path=/user/alice/" in cookie and "Max-Age=600" in cookie


def test_oauth_login_sets_cookie_and_serves_lab(
    fake_hub: FakeHub, alice_server: RunningServer, tokens: dict[str, dict[str, Any]]
) -> None:
    with httpx.Client() as client:
        r = hub_login(fake_hub, alice_server, client)
        assert r.status_code == 302 and r.headers["location"] == "/user/alice/lab"
        cookie = [
            c for c in r.headers.get_list("set-cookie") if c.startswith("jupyterhub-user-alice=")
        ]
        assert cookie and "HttpOnly" in cookie[0] and "Path=/user/alice/" in cookie[0]
        form = fake_hub.state.token_requests[-1]
        assert form["grant_type"] == "authorization_code" and form["code_verifier"]
        assert form["client_secret"] == fake_hub.state.server_token
        r = client.get(alice_server.url + "lab")
        assert r.status_code == 200
        config = page_config(r.text)
        assert config["hubPrefix"] == "/hub/" and config["hubUser"] == "alice"
        assert config["hubServerUser"] == "alice" and config["hubServerName"] == ""
        assert config["shareUrl"] == "/hub/user-redirect" and config["hubHost"] == ""
        assert config["token"] == ""  # the HttpOnly cookie's token never reaches the page
        assert client.get(alice_server.url + "tree").status_code == 200  # Notebook 7
        assert client.get(alice_server.url + "api/me").json()["identity"]["username"] == "alice"
        # cookie-authenticated writes need XSRF
        assert client.post(alice_server.url + "api/contents", json={}).status_code == 403
        r = client.get(alice_server.url + "logout")
        assert r.status_code == 302 and r.headers["location"] == "/hub/logout"
        assert 'jupyterhub-user-alice=""' in r.headers["set-cookie"]


def test_forbidden_user_cannot_log_in(
    fake_hub: FakeHub, alice_server: RunningServer, tokens: dict[str, dict[str, Any]]
) -> None:
    with httpx.Client() as client:
        r = hub_login(fake_hub, alice_server, client, user=BOB)
    assert r.status_code == 403 and "user bob is not allowed" in r.text


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("code=abc&state=forged", 403),
        ("code=abc", 400),
        ("state=forged", 400),
        ("error=access_denied&state=x", 400),
        ("", 400),
    ],
)
def test_bad_callbacks_are_client_errors(
    alice_server: RunningServer, query: str, status: int
) -> None:
    r = httpx.get(alice_server.url + "oauth_callback?" + query)
    assert r.status_code == status


def test_callback_checks_the_state_cookie_and_the_code(
    fake_hub: FakeHub, alice_server: RunningServer, tokens: dict[str, dict[str, Any]]
) -> None:
    fake_hub.state.browser_user = ALICE
    with httpx.Client() as browser, httpx.Client() as attacker:
        r = browser.get(alice_server.url + "login")
        authorize = browser.get(fake_hub.url + r.headers["location"])
        callback = f"http://127.0.0.1:{alice_server.port}{authorize.headers['location']}"
        # another browser replaying the callback has no state cookie
        assert attacker.get(callback).status_code == 400
        # the right browser with a wrong code: the hub refuses, we say 403
        bad = re.sub(r"code=[^&]+", "code=wrong", callback)
        assert browser.get(bad).status_code == 403
        # state is single use
        assert browser.get(callback).status_code == 403


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("token alice-token", 200),
        ("Bearer alice-token", 200),
        ("token admin-token", 200),
        ("token carol-token", 200),  # group filter: alice is in group "lab"
        ("token bob-token", 403),
        ("token nonsense", 403),
    ],
)
def test_token_auth(
    alice_server: RunningServer, tokens: dict[str, dict[str, Any]], header: str, status: int
) -> None:
    r = httpx.get(alice_server.url + "api/status", headers={"Authorization": header})
    assert r.status_code == status
    if status == 403 and "bob" in header:
        assert "user bob is not allowed" in r.text


def test_default_url_and_root_dir_come_from_the_hub(
    alice_server: RunningServer, tokens: dict[str, dict[str, Any]]
) -> None:
    auth = {"Authorization": "token alice-token"}
    r = httpx.get(alice_server.url, headers=auth)
    assert r.status_code == 302 and r.headers["location"].rstrip("?") == "/user/alice/tree"
    names = [
        f["name"]
        for f in httpx.get(alice_server.url + "api/contents", headers=auth).json()["content"]
    ]
    assert names == ["marker.txt"]


def test_url_token_only_for_websockets(
    alice_server: RunningServer, tokens: dict[str, dict[str, Any]]
) -> None:
    assert httpx.get(alice_server.url + "api/status?token=alice-token").status_code == 403


def test_activity_and_busy_kernel(
    fake_hub: FakeHub, alice_server: RunningServer, tokens: dict[str, dict[str, Any]]
) -> None:
    auth = {"Authorization": "token alice-token"}
    r = httpx.post(alice_server.url + "api/kernels", headers=auth, json={}, timeout=30)
    assert r.status_code == 201
    kernel = r.json()["id"]
    ws = f"ws://127.0.0.1:{alice_server.port}/user/alice/api/kernels/{kernel}/channels"
    assert run_code(ws, "1+1", auth) == "2"
    assert run_code(ws + "?token=alice-token", "2+2") == "4"  # websocket ?token=
    with pytest.raises(Exception, match="403"):
        run_code(ws + "?token=bob-token", "1")
    report = fake_hub.state.activity[-1]
    assert report["user"] == "alice" and set(report) == {"user", "last_activity", "servers"}
    assert report["servers"][""]["last_activity"] == report["last_activity"]
    assert report["last_activity"].endswith("Z")
    # A silent long computation is activity "now", not the time the cell started.
    started = datetime.now(UTC)
    run_code(ws, "import time; time.sleep(6); 3", auth, timeout=30)
    finished = datetime.now(UTC)
    reported = [
        datetime.fromisoformat(a["last_activity"].replace("Z", "+00:00"))
        for a in fake_hub.state.activity
    ]
    # Kernel messages only come at the start and the end of the cell; a timestamp well inside
    # the silent middle can only come from counting the busy kernel as activity "now".
    middle = [
        ts
        for ts in reported
        if started + timedelta(seconds=2) <= ts <= finished - timedelta(seconds=1)
    ]
    assert middle, (started, finished, reported[-8:])
    httpx.delete(alice_server.url + f"api/kernels/{kernel}", headers=auth)


def test_activity_stops_when_idle(fake_hub: FakeHub, alice_server: RunningServer) -> None:
    time.sleep(2.5)
    count = len(fake_hub.state.activity)
    time.sleep(2.5)
    assert len(fake_hub.state.activity) == count  # nothing new happened, nothing reported
