"""End to end: a real hub with spawner_class="slurm" starts amalthea-singleuser as a Slurm job.

The hub (root, like a site's hub with sudo rights) submits as a throw-away Unix user; the
server is reached through the hub's proxy with an API token, runs code in a kernel as that user,
and the job is cancelled when the server is stopped through the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from amalthea.testing.engines.apt import EngineUnavailable
from amalthea.testing.engines.slurm import start_slurm
from amalthea.testing.engines.unix_users import create_user, remove_user
from amalthea.testing.hub import start_hub
from tests.spawners.test_slurm import REPO, SITE_PACKAGES, run_code

pytestmark = [pytest.mark.engine("slurm"), pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    try:
        cluster = start_slurm()
    except EngineUnavailable as e:
        pytest.skip(str(e))
    yield cluster
    cluster.stop()


@pytest.fixture
def user():
    user = create_user()
    yield user
    remove_user(user)


def wait_ready(client: httpx.Client, name: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = client.get(f"/users/{name}").json()
        server = model.get("servers", {}).get("", {})
        if server.get("ready"):
            return server
        time.sleep(0.3)
    raise AssertionError(f"server not ready: {model}")


#: hub config shared by the Slurm-through-the-hub tests: jobs run as the user (runuser), the
#: server from this checkout on the system Python (the venv under /root is not readable).
HUB_CONFIG = f"""
c.SlurmSpawner.exec_prefix = "runuser -u {{{{ username }}}} --"
c.SlurmSpawner.cmd = ["/usr/bin/python3", "-m", "amalthea.singleuser.app"]
c.SlurmSpawner.environment = {{"PYTHONPATH": "{REPO}:{SITE_PACKAGES}", "PATH": "/usr/local/bin:/usr/bin:/bin"}}
c.SlurmSpawner.ip = "127.0.0.1"
c.SlurmSpawner.query_interval = 0.3
c.SlurmSpawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.Spawner.start_timeout = 120
"""


async def test_hub_spawns_slurm_job(cluster, user, tmp_path) -> None:
    config = HUB_CONFIG
    hub = start_hub(tmp_path, config, spawner="slurm", env={"SLURM_CONF": str(cluster.conf)})
    try:
        with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as api:
            assert api.post(f"/users/{user.name}").status_code in (201, 409)
            r = api.post(f"/users/{user.name}/server")
            assert r.status_code in (201, 202), r.text
            wait_ready(api, user.name)
            jobs = cluster.run("squeue", "-h", "-o", "%i %u %T").stdout.split()
            assert jobs[1:] == [user.name, "RUNNING"], jobs

            base = f"{hub.url}/user/{user.name}"
            with httpx.Client(headers=hub.admin_headers, timeout=30) as client:
                assert client.get(f"{base}/api/status").status_code == 200
                kernel = client.post(f"{base}/api/kernels", json={"name": "python3"}).json()
            ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels"
            output = await run_code(ws_url, hub.admin_headers, "import os; print(os.getuid())")
            assert output.strip() == str(user.uid)

            r = api.delete(f"/users/{user.name}/server")
            assert r.status_code in (202, 204), r.text
            for _ in range(100):
                if not cluster.run("squeue", "-h", "-o", "%i").stdout.strip():
                    break
                await asyncio.sleep(0.2)
            assert cluster.run("squeue", "-h", "-o", "%i").stdout.strip() == ""
    except BaseException:
        print(hub.log()[-6000:])
        raise
    finally:
        # RunningHub.stop() trips over a server row whose spawner_state is JSON null
        # (amalthea/testing/hub.py, not ours); the hub process is stopped before that point.
        with contextlib.suppress(AttributeError):
            hub.stop()
