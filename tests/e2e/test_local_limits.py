"""A memory limit on a local server, through a real hub: the kernel dies, not the server or hub.

The hub runs as root with ``spawner_class = "local"`` and ``c.Spawner.mem_limit = "200M"``;
the server runs as a throw-away Unix user, inside the cgroup the spawner made for it. A cell
that allocates 400 MB through the proxy makes the kernel's OOM killer end the kernel (the
biggest process in the group); the server keeps serving, a new kernel runs code, and stopping
the server removes the group.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

from amalthea.spawners.naming import safe_name
from amalthea.testing.engines.unix_users import create_user, remove_user
from amalthea.testing.session import HubSession, run_code

pytestmark = [pytest.mark.slow, pytest.mark.engine("cgroups")]

LIMIT = 200 * 1024**2
REPO = Path(__file__).resolve().parents[2]
# the venv's interpreter lives under root's home, which the server's user cannot enter: run
# Debian's python3 (same version) on the venv's packages, as the Slurm tests do
SITE_PACKAGES = REPO / ".venv/lib/python3.11/site-packages"


def memory_root() -> Path | None:
    """Where the hub's server groups go: v1 memory hierarchy under our own group (the hub is
    our child, so it is in the same group), or the cgroup2 mount when it has memory."""
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                return v1 / path.lstrip("/")
    for candidate in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        try:
            if "memory" in (candidate / "cgroup.controllers").read_text().split():
                return candidate
        except OSError:
            continue
    return None


@pytest.fixture
def unix_user():
    if os.geteuid() != 0:
        pytest.skip("the local spawner and cgroups need the hub to run as root")
    if memory_root() is None:
        pytest.skip("no memory cgroup controller on this host")
    user = create_user()
    yield user
    remove_user(user)


def wait_ready(hub, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{hub.api_url}/users/{name}", headers=hub.admin_headers)
        if r.json().get("servers", {}).get("", {}).get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"server not ready:\n{hub.log()[-4000:]}")


def run_until_kernel_dies(hub, prefix: str, headers: dict[str, str], code: str) -> list[str]:
    """Execute ``code``; return the kernel status changes seen until it restarts or dies."""
    from websockets.sync.client import connect

    with httpx.Client(base_url=hub.url, timeout=60) as c:
        r = c.post(f"{prefix}api/kernels", headers=headers, json={"name": "python3"})
        assert r.status_code == 201, r.text
        kernel_id = r.json()["id"]
    url = "ws" + hub.url.removeprefix("http") + f"{prefix}api/kernels/{kernel_id}/channels"
    states: list[str] = []
    with connect(url, additional_headers=headers, open_timeout=60) as ws:
        ws.send(json.dumps({
            "header": {"msg_id": uuid.uuid4().hex, "username": "t", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            kind = msg.get("msg_type") or msg["header"]["msg_type"]
            if kind == "status":
                states.append(msg["content"]["execution_state"])
                if states[-1] in ("restarting", "dead"):
                    return states
            if kind == "execute_reply":
                raise AssertionError(f"the allocation was not stopped: {msg['content']}")
    raise AssertionError(f"kernel neither restarted nor died: {states}")


def test_memory_limit_kills_the_kernel_not_the_server(unix_user, amalthea_hub_factory):
    name = unix_user.name
    hub = amalthea_hub_factory(
        spawner="local",
        config=f"""
        c.Spawner.cmd = ["/usr/bin/python3", "-m", "amalthea.singleuser.app"]
        c.Spawner.environment = {{"PYTHONPATH": "{REPO}:{SITE_PACKAGES}"}}
        c.Spawner.mem_limit = "200M"
        c.Spawner.http_timeout = 90
        c.Spawner.start_timeout = 90
        """,
    )
    api = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=60)
    try:
        assert api.post(f"/users/{name}").status_code in (201, 409)
        r = api.post(f"/users/{name}/server")
        assert r.status_code in (201, 202), r.text
        wait_ready(hub, name)
        group = memory_root() / "amalthea" / safe_name(name)  # type: ignore[operator]
        limit_file = "memory.limit_in_bytes" if (group / "memory.limit_in_bytes").exists() else "memory.max"  # fmt: skip
        assert int((group / limit_file).read_text()) == LIMIT
        server_pids = {int(p) for p in (group / "cgroup.procs").read_text().split()}
        assert server_pids, "the server is not in its group"

        token = api.post(f"/users/{name}/tokens", json={"note": "limits"}).json()["token"]
        headers = {"Authorization": f"token {token}"}
        prefix = f"/user/{name}/"
        _, uid = run_code(hub.url, prefix, headers, "import os; os.getuid()")
        assert uid == str(unix_user.uid)

        states = run_until_kernel_dies(hub, prefix, headers, "x = b'x' * (400 * 2**20)")
        assert states[-1] in ("restarting", "dead")
        oom_file = (
            "memory.oom_control" if limit_file == "memory.limit_in_bytes" else "memory.events"
        )
        kills = dict(line.split() for line in (group / oom_file).read_text().splitlines())
        assert int(kills["oom_kill"]) >= 1

        # the server and the hub are fine; a new kernel runs code
        for pid in server_pids:
            os.kill(pid, 0)  # raises if the server process itself was killed
        assert httpx.get(f"{hub.url}{prefix}api/status", headers=headers).status_code == 200
        assert httpx.get(hub.api_url + "/").status_code == 200
        _, result = run_code(hub.url, prefix, headers, "6 * 7")
        assert result == "42"
        model = api.get(f"/users/{name}").json()["servers"][""]
        assert model["ready"] is True

        assert api.delete(f"/users/{name}/server").status_code in (202, 204)
        deadline = time.monotonic() + 30
        while group.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group.exists(), "the server's cgroup was not removed on stop"
    except BaseException:
        print(hub.log()[-6000:])
        raise
    finally:
        api.close()


def test_server_killed_at_its_limit_is_explained(unix_user, amalthea_hub_factory):
    """A limit too small for the server itself: the spawn fails and says it was the limit."""
    hub = amalthea_hub_factory(
        spawner="local",
        config="""
        c.Spawner.cmd = ["/usr/bin/python3", "-c", "print('allocating', flush=True); x = b'x' * (200 * 2**20)"]
        c.Spawner.mem_limit = "60M"
        """,
    )
    name = unix_user.name
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=60) as api:
        assert api.post(f"/users/{name}").status_code in (201, 409)
        r = api.post(f"/users/{name}/server")
        assert r.status_code == 500, r.text
        reason = "The server was killed for using more than its memory limit (60M)."
        assert r.json()["message"] == f"Spawn failed: {reason}"
    with HubSession(hub.url) as s:
        s.login(name)
        failed = s.progress()[-1]
        assert failed["message"] == f"Spawn failed: {reason}"
        assert "allocating" in failed["log_tail"]
    group = memory_root() / "amalthea" / safe_name(name)  # type: ignore[operator]
    assert not group.exists()
