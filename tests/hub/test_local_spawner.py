"""The ``local`` spawner runs each server as the user's own Unix account (hub as root)."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from amalthea.testing import fake_singleuser

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local spawner needs root")

# the system Python: the venv's interpreter may live where other accounts cannot execute it
# (e.g. under /root); the fake server is a stdlib-only script
SYSTEM_PYTHON = "/usr/bin/python3"
FAKE = f"c.Spawner.cmd = [{SYSTEM_PYTHON!r}, {fake_singleuser.__file__!r}]\n"


@pytest.fixture
def unix_user():
    from amalthea.testing.engines.unix_users import create_user, remove_user

    user = create_user()
    yield user
    remove_user(user)


def test_server_runs_as_the_users_account(amalthea_hub_factory, unix_user):
    hub = amalthea_hub_factory(spawner="local", config=FAKE)
    h = hub.admin_headers
    assert httpx.post(f"{hub.api_url}/users/{unix_user.name}", headers=h).status_code == 201
    r = httpx.post(f"{hub.api_url}/users/{unix_user.name}/server", headers=h, timeout=60)
    assert r.status_code == 201, r.text
    info = httpx.get(f"{hub.url}/user/{unix_user.name}/whoami", headers=h).json()
    assert info["uid"] == unix_user.uid
    assert info["cwd"] == unix_user.home and info["home"] == unix_user.home
    log = hub.data_dir / "logs" / f"{unix_user.name}.log"
    assert "fake single-user server" in log.read_text()
    assert (
        httpx.delete(f"{hub.api_url}/users/{unix_user.name}/server", headers=h).status_code == 204
    )


def test_missing_account_is_a_clear_failure_unless_creation_is_on(amalthea_hub_factory):
    name = f"amtx{os.getpid() % 100000}"
    hub = amalthea_hub_factory(spawner="local", config=FAKE)
    h = hub.admin_headers
    httpx.post(f"{hub.api_url}/users/{name}", headers=h)
    r = httpx.post(f"{hub.api_url}/users/{name}/server", headers=h, timeout=60)
    assert r.status_code == 500 and "create_system_users" in r.json()["message"]
    hub.stop()
    hub2 = amalthea_hub_factory(
        spawner="local", config=FAKE + "c.LocalSpawner.create_system_users = True\n"
    )
    try:
        httpx.post(f"{hub2.api_url}/users/{name}", headers=hub2.admin_headers)
        r = httpx.post(
            f"{hub2.api_url}/users/{name}/server", headers=hub2.admin_headers, timeout=60
        )
        assert r.status_code == 201, r.text
        import pwd

        assert (
            httpx.get(f"{hub2.url}/user/{name}/x", headers=hub2.admin_headers).json()["uid"]
            == pwd.getpwnam(name).pw_uid
        )
    finally:
        hub2.stop()
        subprocess.run(["userdel", "-r", name], capture_output=True)
