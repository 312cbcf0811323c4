"""End to end: a real amalthea hub with spawner_class = "docker" and the built image.

The hub and its proxy run as a subprocess (amalthea.testing.hub); the server runs
``amalthea-singleuser`` in a container of the private dockerd. We start it through the REST
API, reach JupyterLab and a kernel through the proxy, restart the hub (the container must
survive and be found again) and stop the server.
"""

from __future__ import annotations

import time

import httpx
import pytest
from test_docker import execute

from amalthea.testing.engines.fixtures import docker_engine, singleuser_image
from amalthea.testing.hub import free_port, start_hub

__all__ = ["docker_engine", "singleuser_image"]  # fixtures used by these tests

pytestmark = [pytest.mark.engine("docker"), pytest.mark.slow, pytest.mark.timeout(300)]


def wait_ready(hub, user: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = httpx.get(f"{hub.api_url}/users/{user}", headers=hub.admin_headers).json()
        server = model.get("servers", {}).get("", {})
        if server.get("ready"):
            return server
        time.sleep(0.5)
    raise AssertionError(f"server not ready: {model}\n{hub.log()[-3000:]}")


@pytest.mark.parametrize("network", ["host", "bridge"])
async def test_hub_spawns_docker_server_and_reconnects_after_restart(
    tmp_path, docker_engine, singleuser_image, network
):
    config = f"""
        c.DockerSpawner.docker_host = {docker_engine.host!r}
        c.DockerSpawner.image = {singleuser_image!r}
        c.DockerSpawner.pull_policy = "never"
        c.DockerSpawner.network_name = {network!r}
        c.DockerSpawner.mem_limit = "1G"
        c.Spawner.default_url = "/lab"
    """
    if network == "bridge":
        # Containers reach the hub at the bridge gateway, so the hub listens there too.
        config += f"""
        c.Amalthea.hub_bind_url = "http://{docker_engine.gateway_ip}:{free_port()}"
        """
    hub = start_hub(tmp_path, config, spawner="docker")
    try:
        user = "alice"
        headers = hub.admin_headers
        httpx.post(f"{hub.api_url}/users/{user}", headers=headers).raise_for_status()
        started = httpx.post(f"{hub.api_url}/users/{user}/server", headers=headers, timeout=60)
        assert started.status_code in (201, 202), started.text
        wait_ready(hub, user)

        base = f"{hub.url}/user/{user}/"
        lab = httpx.get(f"{base}lab", headers=headers, timeout=30)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        outcome = await execute(base, "1 + 1", token=hub.admin_token)
        assert outcome.get("result") == "2", outcome
        (container,) = docker_engine.cli("ps", "-q", "--filter", "name=amalthea-alice").split()

        hub.restart(keep_servers=True)
        wait_ready(hub, user, timeout=30)
        assert docker_engine.cli("ps", "-q", "--filter", "name=amalthea-alice").split() == [
            container
        ]
        outcome = await execute(base, "2 * 21", token=hub.admin_token)
        assert outcome.get("result") == "42", outcome

        stopped = httpx.delete(f"{hub.api_url}/users/{user}/server", headers=headers, timeout=60)
        assert stopped.status_code in (202, 204), stopped.text
        deadline = time.monotonic() + 60
        while docker_engine.cli("ps", "-aq", "--filter", "name=amalthea-alice").strip():
            assert time.monotonic() < deadline, "container not removed after stop"
            time.sleep(0.5)
    finally:
        hub.stop()
