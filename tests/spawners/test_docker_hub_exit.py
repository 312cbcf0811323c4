"""Spawn failures through a real hub with Docker: the user sees why, not just an exit status.

The container runs on the host network, so ``start()`` returns at once and the hub's own
readiness wait is what notices the exit; the lifecycle then asks the spawner's
``exit_error()`` and shows its words (OOM kill with the limit, command missing from the image)
plus the container's log tail, in the API answer, the progress stream and the pending page.
"""

from __future__ import annotations

import html

import httpx
import pytest

from amalthea.testing.engines.fixtures import base_image, docker_engine
from amalthea.testing.hub import start_hub
from amalthea.testing.session import HubSession

__all__ = ["base_image", "docker_engine"]  # fixtures used by these tests

pytestmark = [pytest.mark.engine("docker"), pytest.mark.slow, pytest.mark.timeout(300)]

OOM = "import sys; print('allocating', flush=True); x = b'x' * (400 * 2**20)"


@pytest.fixture
def hub(tmp_path, docker_engine, base_image):
    config = f"""
        c.DockerSpawner.docker_host = {docker_engine.host!r}
        c.DockerSpawner.image = {base_image!r}
        c.DockerSpawner.pull_policy = "never"
        c.DockerSpawner.network_name = "host"
        c.DockerSpawner.remove = False
        c.Amalthea.profiles = [
            {{"slug": "oom", "mem_limit": "300M",
              "spawner_overrides": {{"cmd": ["python3", "-c", {OOM!r}]}}}},
            {{"slug": "missing", "spawner_overrides": {{"cmd": ["no-such-singleuser"]}}}},
        ]
    """
    hub = start_hub(tmp_path, config, spawner="docker")
    yield hub
    hub.stop()


@pytest.mark.parametrize(
    ("profile", "reason", "log_line"),
    [
        ("oom", "was killed for using more than its memory limit (300M)", "allocating"),
        ("missing", "its command 'no-such-singleuser' was not found in", None),
    ],
)
def test_spawn_failure_says_why(hub, profile, reason, log_line):
    with HubSession(hub.url) as s:
        assert s.login("frank").status_code == 302
        r = s.api("POST", "/users/frank/server", json={"user_options": {"profile": profile}})
        assert r.status_code == 500, r.text
        assert reason in r.json()["message"]
        failed = s.progress()[-1]
        assert failed["failed"] is True and reason in failed["message"]
        assert failed["layer"] == "single-user server"
        if log_line:
            assert log_line in failed["log_tail"]
        page = s.client.get("/hub/spawn-pending/frank")
        assert page.status_code == 500 and reason in html.unescape(page.text)
    assert httpx.get(hub.api_url + "/").status_code == 200
