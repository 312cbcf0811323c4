"""amalthea-singleuser under a real JupyterHub 6.1.1 + configurable-http-proxy.

One hub for the module: DummyAuthenticator, SimpleLocalProcessSpawner running our
``amalthea-singleuser``. A plain HTTP client plays the browser: hub login form, OAuth
redirects through the proxy to JupyterLab, a kernel over the websocket, another user's 403,
and activity arriving in the hub's database.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import page_config
from jupyterhub_install import ensure_jupyterhub
from kernelclient import run_code

pytestmark = pytest.mark.slow

SERVICE_TOKEN = "amalthea-test-service-token-0123456789"
PASSWORD = "correct horse battery staple"
SINGLEUSER = Path(sys.executable).parent / "amalthea-singleuser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{proxy_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.allow_named_servers = True
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "2"}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.services = [{{"name": "tester", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "tester",
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users:activity"],
    "services": ["tester"],
}}]
"""


class Hub:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log
        self.api = httpx.Client(
            base_url=f"{url}/hub/api",
            headers={"Authorization": f"token {SERVICE_TOKEN}"},
            timeout=60,
        )

    def wait_ready(self, name: str, server_name: str = "", timeout: float = 150) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model: dict[str, Any] = self.api.get(f"/users/{name}").json()
            server = model.get("servers", {}).get(server_name)
            if server and server.get("ready"):
                return model
            time.sleep(0.5)
        raise TimeoutError(f"{name}'s server not ready; hub log:\n{self.log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    try:
        jupyterhub, chp = ensure_jupyterhub()
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        pytest.fail(f"could not install JupyterHub 6.1.1 / CHP for the e2e test: {exc}")
    tmp = tmp_path_factory.mktemp("jupyterhub")
    proxy_port, hub_port, api_port = free_port(), free_port(), free_port()
    (tmp / "jupyterhub_config.py").write_text(
        CONFIG.format(
            proxy_port=proxy_port,
            hub_port=hub_port,
            api_port=api_port,
            chp=str(chp),
            tmp=tmp,
            password=PASSWORD,
            singleuser=str(SINGLEUSER),
            token=SERVICE_TOKEN,
        )
    )
    log = tmp / "jupyterhub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(jupyterhub), "-f", str(tmp / "jupyterhub_config.py")],
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{proxy_port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/hub/api", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"JupyterHub did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)
    the_hub = Hub(url, proc, log)
    for name in ("alice", "bob"):
        assert the_hub.api.post(f"/users/{name}").status_code in (201, 409)
    yield the_hub
    for name in ("alice", "bob"):
        the_hub.api.delete(f"/users/{name}/server")
    the_hub.api.delete("/users/alice/servers/gpu")
    proc.terminate()  # stops the proxy and (cleanup_servers) the single-user servers
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def browser_login(hub: Hub, name: str) -> httpx.Client:
    client = httpx.Client(base_url=hub.url, follow_redirects=False, timeout=60)
    client.get("/hub/login")
    r = client.post(
        "/hub/login",
        data={
            "username": name,
            "password": PASSWORD,
            "_xsrf": client.cookies.get("_xsrf", path="/hub/"),
        },
    )
    assert r.status_code == 302, r.text
    return client


def follow(client: httpx.Client, path: str, limit: int = 10) -> tuple[httpx.Response, list[str]]:
    """Follow redirects by hand, recording where they went (all relative, via the proxy)."""
    hops: list[str] = []
    r = client.get(path)
    while r.is_redirect and len(hops) < limit:
        hops.append(r.headers["location"])
        r = client.get(r.headers["location"])
    return r, hops


def test_lab_kernel_and_activity_under_real_jupyterhub(hub: Hub) -> None:
    r = hub.api.post("/users/alice/server")
    assert r.status_code in (201, 202), r.text
    hub.wait_ready("alice")
    started = datetime.now(UTC)

    alice = browser_login(hub, "alice")
    r, hops = follow(alice, "/user/alice/lab")
    assert r.status_code == 200, (hops, r.text[:500])
    assert hops[0].startswith("/user/alice/login?next=")
    assert hops[1].startswith("/hub/api/oauth2/authorize?") and "code_challenge=" in hops[1]
    assert hops[2].startswith("/user/alice/oauth_callback?code=")
    assert hops[3] == "/user/alice/lab"
    assert r.headers["x-jupyterhub-version"] == "6.1.1"
    config = page_config(r.text)
    assert (config["hubUser"], config["hubPrefix"], config["hubServerName"]) == (
        "alice",
        "/hub/",
        "",
    )

    r = alice.get("/user/alice/")
    assert (
        r.status_code == 302 and r.headers["location"].rstrip("?") == "/user/alice/lab"
    )  # default

    # cookie + XSRF, as JupyterLab does it
    xsrf = alice.cookies.get("_xsrf", path="/user/alice/")
    assert xsrf, "jupyter_server sets _xsrf on its pages"
    r = alice.post("/user/alice/api/kernels", json={}, headers={"X-XSRFToken": xsrf})
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    ws = f"{hub.url.replace('http', 'ws')}/user/alice/api/kernels/{kernel}/channels"
    cookie = "; ".join(f"{c.name}={c.value}" for c in alice.cookies.jar)
    assert run_code(ws, "1+1", {"Cookie": cookie}) == "2"

    # a hub API token of alice works as Authorization header too
    token = hub.api.post("/users/alice/tokens", json={"note": "e2e"}).json()["token"]
    assert run_code(ws, "3*3", {"Authorization": f"token {token}"}) == "9"
    assert (
        httpx.get(
            f"{hub.url}/user/alice/api/status", headers={"Authorization": f"bearer {token}"}
        ).status_code
        == 200
    )

    # activity reaches the hub (interval forced to 2 s)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        model = hub.api.get("/users/alice").json()
        seen = model["servers"][""]["last_activity"]
        if seen and datetime.fromisoformat(seen.replace("Z", "+00:00")) > started:
            break
        time.sleep(1)
    else:
        pytest.fail(f"no activity after {started}: {model}")

    # log out goes to the hub and clears our cookie
    r = alice.get("/user/alice/logout")
    assert r.status_code == 302 and r.headers["location"] == "/hub/logout"


def test_other_user_is_refused(hub: Hub) -> None:
    if not hub.api.get("/users/alice").json()["servers"].get(""):
        hub.api.post("/users/alice/server")
        hub.wait_ready("alice")
    bob = browser_login(hub, "bob")
    r, hops = follow(bob, "/user/alice/lab")
    # the hub itself refuses to authorize bob for alice's server: no code is ever issued
    assert r.status_code == 403, hops
    assert hops[-1].startswith("/hub/api/oauth2/authorize?")
    assert not any(h.startswith("/user/alice/oauth_callback") for h in hops)
    token = hub.api.post("/users/bob/tokens", json={"note": "e2e"}).json()["token"]
    r = httpx.get(f"{hub.url}/user/alice/api/status", headers={"Authorization": f"token {token}"})
    assert r.status_code == 403 and "user bob is not allowed" in r.text
    r = httpx.get(f"{hub.url}/user/alice/api/kernels")  # no credentials at all
    assert r.status_code == 403
    # a forged OAuth callback through the proxy is refused, not a server error
    r = bob.get("/user/alice/oauth_callback?code=stolen&state=forged")
    assert r.status_code == 403


def test_named_server(hub: Hub) -> None:
    r = hub.api.post("/users/alice/servers/gpu")
    assert r.status_code in (201, 202), r.text
    hub.wait_ready("alice", "gpu")
    alice = browser_login(hub, "alice")
    r, hops = follow(alice, "/user/alice/gpu/tree")
    assert r.status_code == 200, (hops, r.text[:500])
    assert "client_id=jupyterhub-user-alice-gpu" in hops[1]
    assert hops[2].startswith("/user/alice/gpu/oauth_callback?code=")
    assert any(c.name == "jupyterhub-user-alice-gpu" for c in alice.cookies.jar)
    config = page_config(r.text)
    assert config["hubServerName"] == "gpu"
    # each server has its own cookie: the named server's does not open the default server
    gpu_cookie = {
        c.name: c.value or "" for c in alice.cookies.jar if c.name == "jupyterhub-user-alice-gpu"
    }
    r = httpx.get(f"{hub.url}/user/alice/api/status", cookies=gpu_cookie)
    assert r.status_code == 403
    assert hub.api.delete("/users/alice/servers/gpu").status_code in (202, 204)


@pytest.mark.browser
def test_jupyterlab_hub_menu_in_chromium(hub: Hub, tmp_path: Path) -> None:
    """JupyterLab loads through the hub and its File menu has working hub entries."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (apt: chromium)")
    if not hub.api.get("/users/alice").json()["servers"].get(""):
        hub.api.post("/users/alice/server")
    hub.wait_ready("alice")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            page.goto(f"{hub.url}/hub/login?next=%2Fuser%2Falice%2Flab")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url(re.compile(r".*/user/alice/lab.*"))
            page.wait_for_selector(".jp-LabShell")
            page.screenshot(path=str(tmp_path / "lab.png"))
            page.click(".lm-MenuBar-itemLabel:text-is('File')")
            page.wait_for_selector(".lm-Menu-itemLabel:text-is('Hub Control Panel')")
            page.screenshot(path=str(tmp_path / "file-menu.png"))
            with page.context.expect_page() as popup:
                page.click(".lm-Menu-itemLabel:text-is('Hub Control Panel') >> visible=true")
            popup.value.wait_for_load_state()
            assert "/hub/home" in popup.value.url
            popup.value.close()
            ours = [c for c in page.context.cookies() if c["name"] == "jupyterhub-user-alice"]
            assert ours and ours[0]["httpOnly"] and ours[0]["path"] == "/user/alice/"
            page.click(".lm-MenuBar-itemLabel:text-is('File')")
            page.click(".lm-Menu-itemLabel:text-is('Log Out') >> visible=true")
            page.wait_for_url(re.compile(r".*/hub/(login|logout).*"))
            page.screenshot(path=str(tmp_path / "logged-out.png"))
        finally:
            browser.close()
    # Log Out ended the hub session, which revoked the OAuth token behind our cookie: a
    # replayed copy of the cookie no longer gets in.
    replay = {"jupyterhub-user-alice": ours[0]["value"]}
    r = httpx.get(f"{hub.url}/user/alice/api/status", cookies=replay)
    assert r.status_code == 403
