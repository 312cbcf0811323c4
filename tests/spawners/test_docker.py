"""DockerSpawner against a real, private dockerd and a locally built single-user image."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets

from amalthea.spawners.base import ServerAddress, SpawnContext, SpawnError
from amalthea.spawners.docker import DockerSpawner
from amalthea.spawners.docker._engine import _pull_percent
from amalthea.spawners.naming import safe_name
from amalthea.testing.engines.fixtures import base_image, docker_engine, singleuser_image

__all__ = ["base_image", "docker_engine", "singleuser_image"]  # fixtures used by these tests

pytestmark = [pytest.mark.engine("docker"), pytest.mark.timeout(240)]

TOKEN = "test-token-" + uuid.uuid4().hex
PREFIX = "/user/{user}/"
# A tiny server that honours JUPYTERHUB_SERVICE_URL, for tests that need no Jupyter.
SERVE = (
    "import os, urllib.parse as u, http.server as h; "
    "p = u.urlsplit(os.environ['JUPYTERHUB_SERVICE_URL']); "
    "h.HTTPServer((p.hostname, p.port), h.SimpleHTTPRequestHandler).serve_forever()"
)


def jupyter_cmd(user: str) -> list[str]:
    """Plain jupyter server with a token we know (the hub is not part of these tests)."""
    return [
        "jupyter", "server", "--ServerApp.ip=0.0.0.0", "--ServerApp.port=8888",
        f"--ServerApp.base_url={PREFIX.format(user=user)}", f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.allow_remote_access=True", "--ServerApp.open_browser=False",
    ]  # fmt: skip


def context(user: str) -> SpawnContext:
    prefix = PREFIX.format(user=user)
    api = "http://127.0.0.1:18081/hub/api"
    env = {
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_API_URL": api,
        "JUPYTERHUB_ACTIVITY_URL": f"{api}/users/{user}/activity",
        "JUPYTERHUB_API_TOKEN": "not-used-here",
        "JUPYTERHUB_USER": user,
    }
    return SpawnContext(username=user, server_name="", env=env)


@pytest.fixture
async def make_spawner(docker_engine: Any) -> AsyncIterator[Callable[..., DockerSpawner]]:
    made: list[DockerSpawner] = []

    def make(image: str, user: str | None = None, **config: Any) -> DockerSpawner:
        user = user or f"u{uuid.uuid4().hex[:8]}"
        config.setdefault("pull_policy", "never")
        spawner = DockerSpawner(
            context(user), docker_host=docker_engine.host, image=image, **config
        )
        made.append(spawner)
        return spawner

    yield make
    for spawner in made:
        spawner.remove = True
        await spawner.stop(now=True)


async def wait_http(url: str, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                response = await client.get(url, timeout=5)
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s")
            await asyncio.sleep(0.25)


async def execute(base: str, code: str, timeout: float = 60, token: str = TOKEN) -> dict[str, Any]:
    """Start a kernel over the REST API, run ``code`` over its websocket, return the outcome."""
    auth = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(headers=auth) as client:
        response = await client.post(f"{base}api/kernels", json={"name": "python3"}, timeout=30)
        response.raise_for_status()
        kernel_id = response.json()["id"]
    ws_url = base.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    msg_id = uuid.uuid4().hex
    request = {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False},
    }  # fmt: skip
    outcome: dict[str, Any] = {"kernel_id": kernel_id, "states": []}
    async with websockets.connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps(request))
        async with asyncio.timeout(timeout):
            async for raw in ws:
                msg = json.loads(raw)
                kind = msg["header"]["msg_type"]
                if kind == "status":
                    outcome["states"].append(msg["content"]["execution_state"])
                    if msg["content"]["execution_state"] in ("restarting", "dead"):
                        return outcome
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if kind == "execute_result":
                    outcome["result"] = msg["content"]["data"]["text/plain"]
                elif kind == "error":
                    outcome["error"] = msg["content"]["ename"]
                elif kind == "execute_reply":
                    outcome["reply"] = msg["content"]["status"]
                    return outcome
    return outcome


async def test_jupyter_server_in_container_runs_code(make_spawner, singleuser_image, docker_engine):
    spawner = make_spawner(singleuser_image, cmd=jupyter_cmd("alice"), user="alice")
    address = await spawner.start()
    assert address.ip == "127.0.0.1" and address.port > 0
    base = f"{address.url}{PREFIX.format(user='alice')}"
    status = await wait_http(f"{base}api/status?token={TOKEN}")
    assert status.status_code == 200
    outcome = await execute(base, "1 + 1")
    assert outcome.get("result") == "2", outcome
    assert await spawner.poll() is None

    # The hub's loopback API URL was pointed at the bridge gateway (the host seen from inside).
    env = docker_engine.cli("inspect", "-f", "{{json .Config.Env}}", spawner.container_id)
    assert f"JUPYTERHUB_API_URL=http://{docker_engine.gateway_ip}:18081/hub/api" in env
    assert "JUPYTERHUB_SERVICE_URL=http://0.0.0.0:8888/user/alice/" in env


async def test_memory_limit_kills_the_kernel_not_the_server(make_spawner, singleuser_image):
    spawner = make_spawner(
        singleuser_image, cmd=jupyter_cmd("bob"), user="bob", mem_limit="300M", cpu_limit=1
    )
    address = await spawner.start()
    base = f"{address.url}/user/bob/"
    await wait_http(f"{base}api/status?token={TOKEN}")
    outcome = await execute(base, "x = b'x' * (900 * 2**20)\nlen(x)")
    assert "result" not in outcome, outcome
    assert "restarting" in outcome["states"] or "dead" in outcome["states"], outcome
    # The OOM killer took the kernel; the server in the same container lives on.
    assert await spawner.poll() is None
    assert (await wait_http(f"{base}api/status?token={TOKEN}")).status_code == 200


async def test_limits_reach_host_config_and_oom_is_explained(
    make_spawner, base_image, docker_engine
):
    code = "import time; time.sleep(1); x = b'x' * (200 * 2**20); time.sleep(60)"
    spawner = make_spawner(
        base_image, cmd=["python3", "-c", code], mem_limit="64M", cpu_limit="500m",
        pids_limit=50, remove=False,
    )  # fmt: skip
    await spawner.start()
    host = json.loads(
        docker_engine.cli("inspect", "-f", "{{json .HostConfig}}", spawner.container_id)
    )
    assert host["Memory"] == 64 * 2**20 and host["MemorySwap"] == 64 * 2**20
    assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 50
    assert await spawner.wait_for_exit(30) == 137
    error = await spawner.exit_error()
    assert error is not None and error.layer == "single-user server"
    assert "memory limit (64M)" in error.user_message


async def test_home_volume_persists_across_stop_and_start(make_spawner, base_image, docker_engine):
    user = f"vol{uuid.uuid4().hex[:6]}"
    writer = make_spawner(base_image, user=user, home_dir="/home/data", remove=True,
                          cmd=["sh", "-c", "echo kept-$HOSTNAME > /home/data/marker; sleep 1"])  # fmt: skip
    await writer.start()
    assert await writer.wait_for_exit(30) == 0
    await writer.stop()
    assert not docker_engine.cli("ps", "-aq", "--filter", f"name={writer.container_name}").strip()

    reader = make_spawner(base_image, user=user, home_dir="/home/data", remove=False,
                          cmd=["sh", "-c", "cat /home/data/marker; sleep 1"])  # fmt: skip
    await reader.start()
    assert await reader.wait_for_exit(30) == 0
    assert any(line.startswith("kept-") for line in await reader.logs()), await reader.logs()
    assert writer.volume_name == reader.volume_name == f"amalthea-home-{user}"


async def test_fresh_spawner_reconnects_with_load_state(make_spawner, base_image):
    first = make_spawner(base_image, cmd=["python3", "-c", SERVE])
    address = await first.start()
    await wait_http(address.url)
    state = json.loads(json.dumps(first.get_state()))  # what the hub stores in its database

    again = make_spawner(base_image, user=first.context.username, cmd=["python3", "-c", SERVE])
    again.load_state(state)
    assert again.address == address
    assert await again.poll() is None
    assert (await wait_http(address.url)).status_code == 200
    await again.stop()
    assert await again.poll() == 0
    assert await first.poll() == 0  # same container, seen as gone from the old object too


async def test_host_network(make_spawner, base_image):
    spawner = make_spawner(base_image, network_name="host", cmd=["python3", "-c", SERVE])
    address = await spawner.start()
    assert address.ip == "127.0.0.1"
    assert (await wait_http(address.url)).status_code == 200


async def test_failing_command_surfaces_logs_and_exit_code(make_spawner, base_image):
    spawner = make_spawner(
        base_image, cmd=["sh", "-c", "echo 'cannot import amalthea' >&2; sleep 1; exit 3"]
    )
    await spawner.start()
    assert await spawner.wait_for_exit(30) == 3
    error = await spawner.exit_error()
    assert error is not None and error.layer == "single-user server"
    assert "exited with code 3" in error.user_message
    assert "cannot import amalthea" in error.log_tail


async def test_container_exiting_at_once_fails_start_with_reason(make_spawner, base_image):
    spawner = make_spawner(base_image, cmd=["sh", "-c", "echo 'bad config' >&2; exit 2"])
    with pytest.raises(SpawnError) as info:
        await spawner.start()
        await asyncio.sleep(1)  # it may still have been running at the port lookup
        raise await spawner.exit_error()
    assert "exited with code 2" in info.value.user_message
    assert "bad config" in info.value.log_tail


async def test_missing_executable_fails_with_a_clear_reason(make_spawner, base_image):
    spawner = make_spawner(base_image, cmd=["no-such-singleuser"])
    with pytest.raises(SpawnError) as info:
        await spawner.start()
        await spawner.wait_for_exit(10)  # under --init the exec fails just after the start
        raise await spawner.exit_error()
    assert "'no-such-singleuser' was not found in" in info.value.user_message
    assert info.value.layer == "single-user server"


async def test_missing_image_with_pull_never(make_spawner):
    spawner = make_spawner("amalthea-test/does-not-exist:1", pull_policy="never")
    with pytest.raises(SpawnError) as info:
        await spawner.start()
    assert info.value.layer == "container engine"
    assert "'amalthea-test/does-not-exist:1' is not on the Docker host" in info.value.user_message


async def test_pull_failure_is_explained(make_spawner):
    # Nothing listens on port 9 here: the pull fails fast, as with an unreachable registry.
    spawner = make_spawner("127.0.0.1:9/nothing:latest", pull_policy="always")
    events = []

    async def collect():
        async for event in spawner.progress():
            events.append(event)

    collector = asyncio.create_task(collect())
    with pytest.raises(SpawnError) as info:
        await spawner.start()
    await asyncio.wait_for(collector, 5)
    assert "Pulling the image '127.0.0.1:9/nothing:latest' failed" in info.value.user_message
    assert events and events[0].message.startswith("Pulling image")


async def test_progress_events_on_start(make_spawner, base_image):
    spawner = make_spawner(base_image, cmd=["python3", "-c", SERVE])
    start = asyncio.create_task(spawner.start())
    messages = [event.message async for event in spawner.progress()]
    await start
    assert messages[0].startswith("Creating container") and messages[-1] == "Container started"


# ---- no engine needed -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"])
async def test_unreachable_daemon_says_where_and_what_to_do(host):
    spawner = DockerSpawner(context("carol"), docker_host=host, image="x")
    with pytest.raises(SpawnError) as info:
        await spawner.start()
    message = info.value.user_message
    assert info.value.layer == "container engine"
    assert f"Cannot reach the Docker daemon at {host}" in message
    assert "docker_host" in message and "Is dockerd running" in message


def test_pull_progress_is_aggregated_over_layers():
    layers: dict[str, tuple[int, int]] = {}
    assert _pull_percent({"status": "Pulling fs layer", "id": "a"}, layers) is None
    _pull_percent({"id": "a", "progressDetail": {"current": 50, "total": 100}}, layers)
    percent = _pull_percent({"id": "b", "progressDetail": {"current": 0, "total": 100}}, layers)
    assert percent == 10 + 50 * 50 // 200


def test_names_are_docker_safe_and_distinct():
    assert safe_name("alice") == "alice"
    assert safe_name("Alice@Example.org").startswith("alice-example.org-")
    assert safe_name("a@b") != safe_name("a.b")
    spawner = DockerSpawner(SpawnContext(username="A@b", server_name="GPU 1", env={}), image="x")
    assert spawner.container_name.startswith("amalthea-a-b-")
    assert "-gpu-1-" in spawner.container_name


def test_server_address_url():
    assert ServerAddress("127.0.0.1", 8888).url == "http://127.0.0.1:8888"
