"""The two hubs under test, each started from its own venv with an equivalent config.

A ``Hub`` knows how to write its config, start and stop its process, where its public
(proxy) and internal (hub) ports are, and how to start its single-user server by hand for
the "bare start" figure. Everything else the benchmark does goes over HTTP.

Equivalents: JupyterHub's DummyAuthenticator (shared password) + SimpleLocalProcessSpawner
+ CHP, against Amalthea's ``dummy`` + ``local-shared`` + ``amalthea-proxy``. Both use SQLite
in a fresh directory, the same admin user, generous spawn timeouts (30 spawns on 2 cores
take minutes) and their own single-user command from their own venv.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import procstat

PASSWORD = "bench-password"
ADMIN = "bench-admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hub:
    name: str
    work: Path
    venv: Path
    port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hub_api_internal(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def prepare(self) -> None:
        """Fresh directory, config written; the database starts empty."""
        if self.work.exists():
            shutil.rmtree(self.work)
        (self.work / "users").mkdir(parents=True)
        (self.work / "config.py").write_text(self.config())

    def config(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def singleuser_command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        bin_dir = str(self.venv / "bin")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                   VIRTUAL_ENV=str(self.venv), PYTHONUNBUFFERED="1")  # fmt: skip
        return env

    def start(self) -> None:
        self.starts += 1
        log = open(self.work / f"hub-{self.starts}.log", "ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.work, env=self.env(),
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        log.close()

    @property
    def pid(self) -> int | None:
        """The hub process: whoever listens on the hub port (else the process we started)."""
        return procstat.pid_listening_on(self.hub_port) or (self.proc.pid if self.proc else None)

    def proxy_pid(self) -> int | None:
        return procstat.pid_listening_on(self.port)

    def stop(self, timeout: float = 60) -> float:
        """SIGTERM the hub; seconds until it (and, for JupyterHub, its CHP child) is gone."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0

    def teardown(self) -> None:
        """Leave nothing running: hub, proxy, any server still up (by pid, never by name)."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop(30)
        pid = self.proxy_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            procstat.wait_gone(pid, 5)
        for pid in _pids_with_cwd_under(self.work / "users"):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass

    # -- the single-user server started by hand (for "hub overhead on a spawn") -----------
    def singleuser_env(self, user: str, port: int, home: Path) -> dict[str, str]:
        prefix = f"/user/{user}/"
        env = self.env()
        env.update(
            HOME=str(home), USER=user,
            JUPYTERHUB_API_TOKEN="bare-start-token", JUPYTERHUB_CLIENT_ID=f"jupyterhub-user-{user}",
            JUPYTERHUB_API_URL=self.hub_api_internal, JUPYTERHUB_BASE_URL="/",
            JUPYTERHUB_USER=user, JUPYTERHUB_SERVER_NAME="", JUPYTERHUB_HOST="",
            JUPYTERHUB_SERVICE_PREFIX=prefix,
            JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}{prefix}",
            JUPYTERHUB_OAUTH_CALLBACK_URL=f"{prefix}oauth_callback",
            JUPYTERHUB_ACTIVITY_URL=f"{self.hub_api_internal}/users/{user}/activity",
            JUPYTERHUB_OAUTH_ACCESS_SCOPES=f'["access:servers!server={user}/"]',
            JUPYTERHUB_OAUTH_SCOPES=f'["access:servers!server={user}/"]',
            JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES="[]",
        )  # fmt: skip
        return env


class JupyterHub(Hub):
    chp: Path = Path()

    def config(self) -> str:
        args = ["--ServerApp.allow_root=True"] if self.as_root else []
        return f"""\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {self.hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.api_port}"
c.ConfigurableHTTPProxy.command = [{str(self.chp)!r}]
c.JupyterHub.db_url = "sqlite:///{self.work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{self.work}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{self.work}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{{ADMIN!r}}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{self.work}/users/{{username}}"
c.Spawner.cmd = [{str(self.venv / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.args = {args!r}
c.Spawner.start_timeout = 900
c.Spawner.http_timeout = 900
"""

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "jupyterhub"), "-f", str(self.work / "config.py")]

    def singleuser_command(self) -> list[str]:
        args = ["--ServerApp.allow_root=True"] if self.as_root else []
        return [str(self.venv / "bin" / "jupyterhub-singleuser"), *args]


class Amalthea(Hub):
    def config(self) -> str:
        return f"""\
c = get_config()  # noqa
c.Amalthea.bind_url = "{self.url}"
c.Amalthea.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.Amalthea.data_dir = "{self.work}"
c.Amalthea.db_url = "sqlite:///{self.work}/amalthea.sqlite"
c.Amalthea.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.admin_users = {{{ADMIN!r}}}
c.Amalthea.spawner_class = "local-shared"
c.LocalSharedSpawner.users_dir = "{self.work}/users"
c.AmaltheaProxy.api_url = "http://127.0.0.1:{self.api_port}"
c.Spawner.start_timeout = 900
c.Spawner.http_timeout = 900
"""

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "amalthea"), "-f", str(self.work / "config.py")]

    def singleuser_command(self) -> list[str]:
        # what LocalSharedSpawner runs (it adds --allow-root itself when the hub is root)
        return [
            str(self.venv / "bin" / "amalthea-singleuser"),
            *(["--allow-root"] if self.as_root else []),
        ]


def _pids_with_cwd_under(root: Path) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(root)):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out
