"""Start a real ``amalthea`` (hub + proxy) as a subprocess for tests and benchmarks.

    from amalthea.testing.hub import start_hub
    hub = start_hub(tmp_path, config='c.Amalthea.allow_named_servers = True')
    httpx.get(hub.api_url + "/user", headers=hub.admin_headers)
    hub.restart()          # SIGHUP: servers and proxy keep running, hub comes back
    hub.stop()             # SIGTERM with cleanup: servers and proxy stopped too

Pytest fixtures (``amalthea.testing.pytest_plugin``): ``amalthea_hub`` (a running hub with the
dummy authenticator and the local-shared spawner) and ``amalthea_hub_factory`` (call it with
keyword arguments of :func:`start_hub`; every hub is stopped at teardown).

STABLE API: ``start_hub(...)`` keyword arguments and the ``RunningHub`` attributes/methods below.
Every port is picked free at runtime; nothing is shared between hubs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HubStartError", "RunningHub", "free_port", "start_hub"]


class HubStartError(RuntimeError):
    pass


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: every socket stays bound until all are picked, so the kernel
    cannot hand the same port out twice (one hub got the same port for itself and its proxy)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class RunningHub:
    #: public URL through the proxy, e.g. "http://127.0.0.1:41234" (no trailing slash)
    url: str
    #: the hub's own listening URL (bypassing the proxy)
    hub_url: str
    #: ``url + "/hub/api"``
    api_url: str
    #: token of the admin user ``admin_name`` (scopes: everything an admin has)
    admin_token: str
    admin_name: str
    data_dir: Path
    config_path: Path
    proxy_api_url: str
    proxy_token: str = ""
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = 60.0

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.admin_token}"}

    @property
    def log_path(self) -> Path:
        return self.data_dir / "hub.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # ---- process control ---------------------------------------------------------------
    def start(self) -> None:
        env = dict(os.environ, **self.extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(self.log_path, "ab") as logf:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "amalthea.cli", "-f", str(self.config_path)],
                cwd=self.data_dir, env=env, stdout=logf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise HubStartError(
                    f"amalthea exited with status {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(self.api_url + "/", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise HubStartError(f"amalthea did not answer at {self.api_url}:\n{self.log()[-4000:]}")

    def _signal_and_wait(self, sig: int, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, keep_servers: bool = True) -> None:
        """Stop the hub and start it again; with keep_servers, servers and proxy stay up."""
        self._signal_and_wait(signal.SIGHUP if keep_servers else signal.SIGTERM)
        self.start()

    def kill(self) -> None:
        """SIGKILL the hub only (a crash); servers and proxy keep running."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """Stop hub, servers and proxy; also kill anything a crashed hub left behind."""
        self._signal_and_wait(signal.SIGTERM)
        for pid in self._leftover_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        pid_file = self.data_dir / "amalthea-proxy.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)

    def _leftover_pids(self) -> list[int]:
        db = self.data_dir / "amalthea.sqlite"
        if not db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
                rows = conn.execute(
                    "SELECT spawner_state FROM servers WHERE spawner_state IS NOT NULL"
                ).fetchall()
        except sqlite3.Error:
            return []
        pids = []
        for (raw,) in rows:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                pid = json.loads(raw).get("pid")
                if isinstance(pid, int):
                    pids.append(pid)
        return pids


def start_hub(
    tmp_path: Path,
    config: str = "",
    *,
    authenticator: str = "dummy",
    spawner: str = "local-shared",
    admin_name: str = "admin",
    cleanup: bool = True,
    env: dict[str, str] | None = None,
    startup_timeout: float = 60.0,
    port: int | None = None,
    base_url: str = "/",
) -> RunningHub:
    """Write a config into ``tmp_path`` (the hub's data dir) and start amalthea there.

    ``config`` is appended to the generated config, so it can override anything.
    ``port``: the public port, when something must know the hub's URL before it starts (e.g.
    an OAuth redirect URI registered at a test identity provider); default a free one.
    ``base_url``: ``c.Amalthea.base_url``; the hub is then at ``<url><base_url>hub/``.
    """
    data = Path(tmp_path)
    data.mkdir(parents=True, exist_ok=True)
    picked = free_ports(3)
    port, hub_port, api_port = port or picked[0], picked[1], picked[2]
    token = secrets.token_hex(20)
    base = f"""
        c.Amalthea.bind_url = "http://127.0.0.1:{port}"
        c.Amalthea.hub_bind_url = "http://127.0.0.1:{hub_port}"
        c.CHPProxy.api_url = "http://127.0.0.1:{api_port}"
        c.Amalthea.authenticator_class = {authenticator!r}
        c.Amalthea.spawner_class = {spawner!r}
        c.Amalthea.cleanup_servers = {cleanup!r}
        c.Amalthea.cleanup_proxy = {cleanup!r}
        c.Amalthea.api_tokens = {{{token!r}: {admin_name!r}}}
        c.Authenticator.admin_users = {{{admin_name!r}}}
        c.Amalthea.base_url = {base_url!r}
    """
    config_path = data / "amalthea_config.py"
    config_path.write_text(textwrap.dedent(base) + "\n" + textwrap.dedent(config) + "\n")
    hub = RunningHub(
        url=f"http://127.0.0.1:{port}", hub_url=f"http://127.0.0.1:{hub_port}",
        api_url=f"http://127.0.0.1:{port}{base_url}hub/api", admin_token=token, admin_name=admin_name,
        data_dir=data, config_path=config_path, proxy_api_url=f"http://127.0.0.1:{api_port}",
        extra_env=dict(env or {}), startup_timeout=startup_timeout,
    )  # fmt: skip
    try:
        hub.start()
    except BaseException:
        hub.stop()
        raise
    with contextlib.suppress(OSError, ValueError, KeyError):
        hub.proxy_token = json.loads((data / "amalthea_secrets.json").read_text())["proxy_token"]
    return hub
