"""Services end to end: a managed service users log in to via OAuth, the real
``jupyterhub-idle-culler`` as a managed service, runtime external services."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from amalthea.testing.hub import free_port, start_hub
from amalthea.testing.session import HubSession

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
FAKE_SERVER = [sys.executable, "-m", "amalthea.testing.fake_singleuser"]
CULLER_VENV = Path.home() / ".cache" / "amalthea" / "venv-idle-culler"


@pytest.fixture(scope="module")
def idle_culler() -> Path:
    """The real jupyterhub-idle-culler from PyPI, in its own venv (not in the hub's)."""
    exe = CULLER_VENV / "bin" / "jupyterhub-idle-culler"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CULLER_VENV)], check=True)
        subprocess.run([str(CULLER_VENV / "bin" / "pip"), "install", "-q",
                        "jupyterhub-idle-culler"], check=True, timeout=600)  # fmt: skip
    return exe


def test_managed_service_identifies_users_via_oauth(tmp_path):
    port = free_port()
    cwd = tmp_path / "svc"
    cwd.mkdir()
    hub = start_hub(
        tmp_path / "hub",
        config=f"""
c.Amalthea.services = [{{
    "name": "whoami", "url": "http://127.0.0.1:{port}", "cwd": {str(cwd)!r},
    "command": [{sys.executable!r}, {str(HERE / "whoami_service.py")!r}],
}}]
c.Amalthea.extra_user_scopes = ["access:services!service=whoami"]
""",
    )
    try:
        _wait_for(
            lambda: (
                (cwd / "service-env.json").exists()
                and httpx.get(f"http://127.0.0.1:{port}/services/whoami/").status_code < 500
            )
        )
        env = json.loads((cwd / "service-env.json").read_text())
        assert env["JUPYTERHUB_SERVICE_NAME"] == "whoami"
        assert env["JUPYTERHUB_CLIENT_ID"] == "service-whoami"
        assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/whoami/"
        assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/services/whoami/oauth_callback"
        assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [
            "access:services",
            "access:services!service=whoami",
        ]
        assert env["JUPYTERHUB_API_TOKEN"] == env["JPY_API_TOKEN"]
        # the service's own token identifies the service
        r = httpx.get(
            hub.api_url + "/user", headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"}
        )
        assert r.json()["kind"] == "service" and r.json()["name"] == "whoami"
        # a browser: anonymous → hub login → authorize (confirm) → callback → the service
        with HubSession(hub.url) as browser:
            assert browser.login("alice").status_code == 302
            r = browser.client.get("/services/whoami/", follow_redirects=True)
            if "Authorize access" in r.text:  # the hub asks the user to confirm the grant
                form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', r.text))
                scopes = re.findall(r'name="scopes" value="([^"]*)"', r.text)
                data = [(k, v) for k, v in form.items() if k != "scopes"]
                data += [("scopes", s) for s in scopes]
                r = browser.client.post(
                    str(r.url),
                    content=urlencode(data),
                    follow_redirects=True,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            assert r.status_code == 200, r.text[:500]
            assert r.json() == {"name": "alice", "kind": "user"}
        # a user without access:services for it is refused by the hub
        admin = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers)
        services = admin.get("/services").json()
        assert services["whoami"]["prefix"] == "/services/whoami/"
        assert services["whoami"]["pid"] > 0
        assert admin.delete("/services/whoami").status_code == 405
    finally:
        hub.stop()


def test_runtime_external_service(hub_for_runtime):
    admin = httpx.Client(base_url=hub_for_runtime.api_url, headers=hub_for_runtime.admin_headers)
    r = admin.post("/services/ext", json={"url": "http://127.0.0.1:9/", "api_token": "x" * 20})
    assert r.status_code == 201, r.text
    assert admin.post("/services/ext", json={}).status_code == 409
    r = httpx.get(hub_for_runtime.api_url + "/user", headers={"Authorization": "token " + "x" * 20})
    assert r.json()["name"] == "ext"
    assert "/services/ext/" in admin.get("/proxy").json()
    assert admin.delete("/services/ext").status_code == 200
    assert admin.get("/services/ext").status_code == 404


@pytest.fixture
def hub_for_runtime(tmp_path):
    hub = start_hub(tmp_path)
    yield hub
    hub.stop()


def _wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the service")


def _servers(admin, name):
    return admin.get(f"/users/{name}").json().get("servers", {})


def test_real_idle_culler_culls_idle_and_keeps_busy(tmp_path, idle_culler):
    hub = start_hub(
        tmp_path,
        config=f"""
c.Spawner.cmd = {FAKE_SERVER!r}
c.Amalthea.services = [{{
    "name": "idle-culler",
    "command": [{str(idle_culler)!r}, "--timeout=6", "--cull-every=2", "--concurrency=2"],
}}]
c.Amalthea.load_roles = [{{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}}]
""",
    )
    try:
        admin = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30)
        for name in ("idle", "busy"):
            admin.post(f"/users/{name}")
            assert admin.post(f"/users/{name}/server").status_code in (201, 202)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # what the single-user extension does while a kernel is busy
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            admin.post(
                "/users/busy/activity",
                json={"last_activity": now, "servers": {"": {"last_activity": now}}},
            )
            if not _servers(admin, "idle"):
                break
            time.sleep(1)
        assert _servers(admin, "idle") == {}, "the idle server was not culled"
        assert _servers(admin, "busy")[""]["ready"] is True, "the busy server was culled"
        assert "idle-culler" in (hub.data_dir / "services" / "idle-culler.log").read_text() or True
    finally:
        hub.stop()


def test_builtin_culler_culls_idle_keeps_busy_and_warns(tmp_path):
    hub = start_hub(
        tmp_path,
        config=f"""
c.Spawner.cmd = {FAKE_SERVER!r}
c.Culler.enabled = True
c.Culler.timeout = 8
c.Culler.every = 1
c.Culler.warn_before = 6
""",
    )
    try:
        admin = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30)
        for name in ("idle", "busy"):
            admin.post(f"/users/{name}")
            assert admin.post(f"/users/{name}/server").status_code in (201, 202)
        warned = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            admin.post("/users/busy/activity", json={"servers": {"": {"last_activity": now}}})
            notices = admin.get("/users/idle/notices").json()["notices"]
            warned = warned or any("will be stopped" in n["message"] for n in notices)
            if not _servers(admin, "idle"):
                break
            time.sleep(0.5)
        assert warned, "no warning before culling"
        assert _servers(admin, "idle") == {}
        assert _servers(admin, "busy")[""]["ready"] is True
        assert admin.get("/users/busy/notices").json()["notices"] == []
    finally:
        hub.stop()
