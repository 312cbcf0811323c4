"""Fixtures for single-user server tests: a fake hub and a real amalthea-singleuser process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakehub import FakeHub

SINGLEUSER = shutil.which("amalthea-singleuser", path=str(Path(sys.executable).parent)) or (
    "amalthea-singleuser"
)


def singleuser_env(hub: FakeHub, home: Path, user: str = "alice", **extra: str) -> dict[str, str]:
    """The environment a hub would give alice's default server, pointing at ``hub``."""
    prefix = f"/user/{user}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JUPYTER_"))}
    env.update(
        {
            "HOME": str(home),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTERHUB_API_TOKEN": hub.state.server_token,
            "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
            "JUPYTERHUB_API_URL": f"{hub.url}/hub/api",
            "JUPYTERHUB_USER": user,
            "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:0{prefix}",
            "JUPYTERHUB_SERVICE_PREFIX": prefix,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(
                [f"access:servers!server={user}/", f"access:servers!user={user}"]
            ),
            "JUPYTERHUB_ACTIVITY_URL": f"{hub.url}/hub/api/users/{user}/activity",
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_HOST": "",
            "AMALTHEA_REPORT_URL": f"{hub.url}/report",
        }
    )
    env.update(extra)
    return env


def page_config(html: str) -> dict[str, Any]:
    """The JSON page config that jupyter_server pages embed for the frontend."""
    match = re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', html, re.S)
    assert match, "no jupyter-config-data in the page"
    config: dict[str, Any] = json.loads(match[1])
    return config


class RunningServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, prefix: str, log: Path) -> None:
        self.proc, self.port, self.prefix, self.log = proc, port, prefix, log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_singleuser(
    hub: FakeHub, env: dict[str, str], home: Path, extra_args: list[str] | None = None
) -> RunningServer:
    """Start amalthea-singleuser on an ephemeral port; it reports the port to the fake hub."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "singleuser.log"
    seen = len(hub.state.reports)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SINGLEUSER, "--allow-root", *(extra_args or [])],
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while len(hub.state.reports) <= seen:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"amalthea-singleuser did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    port = hub.state.reports[-1]["port"]
    return RunningServer(proc, port, env["JUPYTERHUB_SERVICE_PREFIX"], log)


@pytest.fixture(scope="module")
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub().start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def alice_server(
    fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("alice")
    (home / "work").mkdir()
    (home / "work" / "marker.txt").write_text("root dir from the hub")
    env = singleuser_env(
        fake_hub,
        home,
        JUPYTERHUB_ACTIVITY_INTERVAL="1",
        JUPYTERHUB_ROOT_DIR=str(home / "work"),
        JUPYTERHUB_DEFAULT_URL="/tree",
    )
    server = start_singleuser(fake_hub, env, home)
    yield server
    server.stop()
