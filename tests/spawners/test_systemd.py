"""SystemdSpawner: on this host (no systemd) and inside a container running systemd as PID 1.

The spawner runs inside the container (tests/spawners/systemd_helper.py through docker exec,
one process per action, so each step after start goes through load_state); the server it
starts listens on the shared host network, so the test reaches it from here.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from amalthea.spawners.base import SpawnContext, SpawnError
from amalthea.spawners.systemd import SystemdSpawner, require_systemd
from amalthea.testing.engines.fixtures import docker_engine, systemd_container

__all__ = ["docker_engine", "systemd_container"]  # fixtures used by these tests

SERVE = (
    "import os, urllib.parse as u, http.server as h; "
    "p = u.urlsplit(os.environ['JUPYTERHUB_SERVICE_URL']); "
    "h.HTTPServer((p.hostname, p.port), h.SimpleHTTPRequestHandler).serve_forever()"
)
HELPER = "/src/tests/spawners/systemd_helper.py"


def spawn(box, action: str, **config) -> dict:
    out = box.exec("env", "PYTHONPATH=/src", "python3", HELPER, action, json.dumps(config))
    return json.loads(out.strip().splitlines()[-1])


def wait_for(predicate, timeout: float = 90):  # systemd in a container is slow under CI load
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def box(systemd_container):
    systemd_container.exec("sh", "-c", "id hubtest || useradd --create-home hubtest")
    return systemd_container


def reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# ---- no engine needed -------------------------------------------------------------------


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="this host runs systemd")
async def test_clear_error_without_systemd(tmp_path):
    with pytest.raises(SpawnError) as info:
        require_systemd()
    assert "systemd is not running as init on this host" in info.value.user_message
    assert "PID 1 is" in info.value.user_message
    spawner = SystemdSpawner(SpawnContext("alice", "", {}, data_dir=str(tmp_path)))
    with pytest.raises(SpawnError, match="systemd is not running as init"):
        await spawner.start()


def test_command_line_carries_limits_and_user(tmp_path):
    ctx = SpawnContext("Alice@x", "gpu", {}, data_dir=str(tmp_path))
    spawner = SystemdSpawner(
        ctx, mem_limit="1G", cpu_limit=1.5, pids_limit=100, extra_properties=["Nice=5"]
    )
    cmd = spawner.run_command(spawner.unit_name, tmp_path / "x.env")
    assert cmd[0] == "systemd-run" and spawner.unit_name.startswith("amalthea-alice-x-")
    for prop in ("MemoryMax=1073741824", "CPUQuota=150%", "TasksMax=100", "PrivateTmp=yes",
                 "User=Alice@x", "WorkingDirectory=~", "Nice=5", f"EnvironmentFile={tmp_path}/x.env"):  # fmt: skip
        assert f"--property={prop}" in cmd
    assert cmd[cmd.index("--") + 1 :] == ["amalthea-singleuser"]
    dynamic = SystemdSpawner(ctx, dynamic_user=True).run_command("u", tmp_path / "x.env")
    assert "--property=DynamicUser=yes" in dynamic
    assert not any(p.startswith("--property=User=") for p in dynamic)


# ---- systemd as PID 1 in a container -----------------------------------------------------

engine = pytest.mark.engine("docker")


@engine
def test_unit_runs_with_limits_as_the_user(box):
    user = f"s{uuid.uuid4().hex[:6]}"
    config = dict(user=user, unix_user_template="hubtest", mem_limit="256M", cpu_limit=0.5,
                  pids_limit=64, cmd=["python3", "-c", SERVE])  # fmt: skip
    started = spawn(box, "start", **config)
    assert "spawn_error" not in started, started
    wait_for(lambda: reachable(started["url"]))

    props = spawn(box, "show", **config, properties=[
        "MemoryMax", "CPUQuotaPerSecUSec", "TasksMax", "User", "PrivateTmp", "MainPID"])["props"]  # fmt: skip
    assert props["MemoryMax"] == str(256 * 2**20)
    assert props["CPUQuotaPerSecUSec"] == "500ms"
    assert props["TasksMax"] == "64"
    assert props["User"] == "hubtest" and props["PrivateTmp"] == "yes"
    owner = box.exec("ps", "-o", "user=", "-p", props["MainPID"]).strip()
    assert owner == "hubtest"
    # The API token reached the server through the EnvironmentFile, not the command line.
    environ = box.exec("cat", f"/proc/{props['MainPID']}/environ")
    assert "JUPYTERHUB_API_TOKEN=secret-token" in environ
    assert "secret-token" not in box.exec("ps", "-eo", "args")

    assert spawn(box, "poll", **config)["poll"] is None
    assert spawn(box, "stop", **config)["poll"] == 0
    assert not reachable(started["url"])


@engine
def test_memory_limit_kills_and_is_explained(box):
    code = "import time; time.sleep(0.5); x = b'x' * (200 * 2**20); time.sleep(60)"
    config = dict(user=f"m{uuid.uuid4().hex[:6]}", unix_user_template="hubtest",
                  mem_limit="32M", cmd=["python3", "-c", code])  # fmt: skip
    assert "spawn_error" not in spawn(box, "start", **config)
    wait_for(lambda: spawn(box, "poll", **config)["poll"] is not None)
    error = spawn(box, "exit_error", **config)["error"]
    assert error["layer"] == "single-user server"
    assert "memory limit (32M)" in error["message"], error
    spawn(box, "stop", **config)


@engine
def test_failing_command_shows_journal_tail(box):
    config = dict(user=f"f{uuid.uuid4().hex[:6]}", unix_user_template="hubtest",
                  cmd=["sh", "-c", "echo 'no module named amalthea' >&2; exit 4"])  # fmt: skip
    assert "spawn_error" not in spawn(box, "start", **config)
    assert wait_for(lambda: spawn(box, "poll", **config)["poll"]) == 4
    error = wait_for(
        lambda: (e := spawn(box, "exit_error", **config)["error"]) and e["log_tail"] and e
    )
    assert "exited with code 4" in error["message"]
    assert "no module named amalthea" in error["log_tail"]
    spawn(box, "stop", **config)


@engine
def test_dynamic_user_gets_a_persistent_state_dir(box):
    user = f"d{uuid.uuid4().hex[:6]}"
    script = "id -u > $HOME/uid; echo persisted >> $HOME/runs; exec sleep 60"
    config = dict(user=user, dynamic_user=True, cmd=["sh", "-c", script])
    for _ in range(2):
        assert "spawn_error" not in spawn(box, "start", **config)
        props = spawn(box, "show", **config, properties=["DynamicUser", "ActiveState"])["props"]
        assert props["DynamicUser"] == "yes"
        runs = f"/var/lib/amalthea-users/{user}/runs"
        wait_for(lambda: box.exec("cat", runs, check=False).count("persisted") >= 1)
        spawn(box, "stop", **config)
    assert box.exec("cat", runs).count("persisted") == 2
    uid = int(box.exec("cat", f"/var/lib/amalthea-users/{user}/uid").strip())
    assert uid >= 61184  # systemd's dynamic uid range
