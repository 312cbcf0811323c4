"""SlurmSpawner against a real one-node Slurm cluster started by the fixture.

Jobs run as a throw-away Unix user (submitted through ``runuser``, as the default ``sudo``
prefix would); the server's address is learned from the file the job script writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from amalthea.spawners.base import SpawnContext, SpawnError
from amalthea.spawners.batch import SlurmSpawner
from amalthea.testing.engines.apt import EngineUnavailable
from amalthea.testing.engines.slurm import SlurmCluster, start_slurm
from amalthea.testing.engines.unix_users import UnixUser, create_user, remove_user

pytestmark = [pytest.mark.engine("slurm"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = str(REPO / ".venv/lib/python3.11/site-packages")
HTTP_SERVER = ["sh", "-c", 'exec python3 -m http.server "$AMALTHEA_PORT" --bind 127.0.0.1']


@pytest.fixture(scope="module")
def cluster():
    try:
        cluster = start_slurm()
    except EngineUnavailable as e:
        pytest.skip(str(e))
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)  # the spawner passes it on (client_env)
    yield cluster
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    cluster.stop()


@pytest.fixture(scope="module")
def user():
    user = create_user()
    yield user
    remove_user(user)


def make_spawner(user: UnixUser, cmd: list[str], **kwargs) -> SlurmSpawner:
    context = SpawnContext(
        username=user.name,
        server_name=kwargs.pop("server_name", ""),
        env={"JUPYTERHUB_SERVICE_PREFIX": "/"},
        user_options=kwargs.pop("user_options", {}),
    )
    return SlurmSpawner(
        context,
        cmd=cmd,
        exec_prefix="runuser -u {{ username }} --",
        environment={"PATH": "/usr/local/bin:/usr/bin:/bin", **kwargs.pop("environment", {})},
        ip="127.0.0.1",
        query_interval=0.2,
        start_timeout=60,
        **kwargs,
    )


async def wait_http(url: str, timeout: float = 30, **kwargs) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                return await client.get(url, **kwargs)
            except httpx.TransportError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)


def port_open(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((ip, port)) == 0


async def wait_port_closed(ip: str, port: int, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while port_open(ip, port):
        assert asyncio.get_running_loop().time() < deadline, f"{ip}:{port} still open"
        await asyncio.sleep(0.1)


async def test_lifecycle_state_and_stop(cluster: SlurmCluster, user: UnixUser) -> None:
    spawner = make_spawner(
        user, HTTP_SERVER, user_options={"partition": "other", "runtime": "10:00"}
    )
    events = []

    async def collect():
        async for event in spawner.progress():
            events.append(event)

    collector = asyncio.create_task(collect())
    address = await spawner.start()
    await asyncio.wait_for(collector, 5)
    assert (await wait_http(address.url)).status_code == 200
    assert any("Submitted batch job" in e.message for e in events)
    assert any("is running on" in e.message for e in events)

    # the job runs as the user, in the partition and time limit the user options asked for
    state = spawner.get_state()
    job = cluster.run("squeue", "-h", "-j", state["job_id"], "-o", "%u %P %l").stdout.split()
    assert job == [user.name, "other", "10:00"]

    # a restarted hub finds the running job from the saved state, without restarting it
    again = make_spawner(user, HTTP_SERVER)
    again.load_state(json.loads(json.dumps(state)))
    assert await again.poll() is None
    assert again.address == address

    await again.stop()
    await wait_port_closed(address.ip, address.port)
    assert await spawner.poll() is not None
    assert again.get_state() == {}
    await again.stop()  # idempotent


async def test_failed_start_shows_error_output(cluster: SlurmCluster, user: UnixUser) -> None:
    cmd = ["sh", "-c", "echo 'fatal: the single-user server could not load its config' >&2; exit 3"]
    spawner = make_spawner(user, cmd)
    with pytest.raises(SpawnError) as info:
        await spawner.start()
    assert "ended before the server started" in info.value.user_message
    assert info.value.layer == "batch queue"
    assert any("could not load its config" in line for line in info.value.log_tail)


async def test_poll_notices_job_cancelled_outside(cluster: SlurmCluster, user: UnixUser) -> None:
    spawner = make_spawner(user, HTTP_SERVER)
    await spawner.start()
    assert await spawner.poll() is None
    cluster.run("scancel", spawner.job_id)  # an admin, a preemption, a node failure
    assert await spawner.wait_for_exit(10) is not None
    await spawner.stop()


async def test_queue_position_is_reported(cluster: SlurmCluster, user: UnixUser) -> None:
    # fill the node so the server's job has to wait
    blocker = cluster.run(
        "sbatch", "--parsable", "-c", str(os.cpu_count()), "-o", "/dev/null", "--wrap", "sleep 120"
    ).stdout.strip()
    try:
        for _ in range(100):
            if cluster.run("squeue", "-h", "-j", blocker, "-o", "%T").stdout.strip() == "RUNNING":
                break
            await asyncio.sleep(0.1)
        spawner = make_spawner(user, HTTP_SERVER, server_name="queued")
        start = asyncio.create_task(spawner.start())
        queued = None
        async for event in spawner.progress():
            if "position" in event.message:
                queued = event
                break
        assert queued is not None
        assert "queued (PENDING" in queued.message and "position 1 of 1" in queued.message
        cluster.run("scancel", blocker)
        address = await asyncio.wait_for(start, 30)
        assert (await wait_http(address.url)).status_code == 200
        await spawner.stop()
    finally:
        cluster.run("scancel", blocker)


async def test_jupyter_server_job_runs_code(cluster: SlurmCluster, user: UnixUser) -> None:
    token = uuid.uuid4().hex
    cmd = [
        "sh",
        "-c",
        "exec python3 -m jupyter_server --no-browser --ip=127.0.0.1 "
        f'--port="$AMALTHEA_PORT" --ServerApp.token={token} --ServerApp.root_dir="$HOME"',
    ]
    # the hub's venv lives under /root (0700); the job's python reads its packages directly
    spawner = make_spawner(user, cmd, environment={"PYTHONPATH": SITE_PACKAGES})
    address = await spawner.start()
    try:
        headers = {"Authorization": f"token {token}"}
        await wait_http(f"{address.url}/api", timeout=60)
        async with httpx.AsyncClient(base_url=address.url, headers=headers) as client:
            kernel = (await client.post("/api/kernels", json={"name": "python3"})).json()
        ws_url = f"ws://{address.ip}:{address.port}/api/kernels/{kernel['id']}/channels"
        output = await run_code(ws_url, headers, "import os; print(os.getuid(), 6 * 7)")
        assert output.split() == [str(user.uid), "42"]
    finally:
        await spawner.stop()
    await wait_port_closed(address.ip, address.port)


async def run_code(ws_url: str, headers: dict[str, str], code: str) -> str:
    msg_id = uuid.uuid4().hex
    request = {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }  # fmt: skip
    output = []
    async with websockets.connect(ws_url, additional_headers=headers, open_timeout=30) as ws:
        await ws.send(json.dumps(request))
        async with asyncio.timeout(60):
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["header"]["msg_type"] == "stream":
                    output.append(msg["content"]["text"])
                if msg["header"]["msg_type"] == "error":
                    raise AssertionError(msg["content"]["evalue"])
                if (
                    msg["header"]["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"
                ):
                    return "".join(output)
