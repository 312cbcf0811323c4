"""The Slurm spawner through a real hub, learning the server's address from its report.

Like ``test_slurm_hub.py``, but the job's address file names a host that does not exist
(``host_cmd``), so the spawn can only succeed through the report URL: amalthea-singleuser on
the node POSTs its address to ``AMALTHEA_REPORT_URL`` with its own token, the hub passes it to
``SlurmSpawner.report_address``, and the server is reached through the proxy.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from amalthea.testing.hub import start_hub
from tests.spawners.test_slurm import run_code
from tests.spawners.test_slurm_hub import HUB_CONFIG, cluster, user, wait_ready  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.engine("slurm"), pytest.mark.slow]


async def test_hub_learns_slurm_server_address_from_report(cluster, user, tmp_path) -> None:  # noqa: F811
    config = HUB_CONFIG + 'c.SlurmSpawner.host_cmd = "echo address-file-is-not-used.invalid"\n'
    hub = start_hub(tmp_path, config, spawner="slurm", env={"SLURM_CONF": str(cluster.conf)})
    try:
        with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as api:
            assert api.post(f"/users/{user.name}").status_code in (201, 409)
            r = api.post(f"/users/{user.name}/server")
            assert r.status_code in (201, 202), r.text
            wait_ready(api, user.name)
            assert f"server {user.name} reported its address 127.0.0.1:" in hub.log()

            base = f"{hub.url}/user/{user.name}"
            with httpx.Client(headers=hub.admin_headers, timeout=30) as client:
                kernel = client.post(f"{base}/api/kernels", json={"name": "python3"}).json()
            ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels"
            output = await run_code(ws_url, hub.admin_headers, "import os; print(os.getuid())")
            assert output.strip() == str(user.uid)

            r = api.delete(f"/users/{user.name}/server")
            assert r.status_code in (202, 204), r.text
    except BaseException:
        print(hub.log()[-6000:])
        raise
    finally:
        with contextlib.suppress(AttributeError):
            hub.stop()
