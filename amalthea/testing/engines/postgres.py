"""A private PostgreSQL cluster for tests: initdb in a temp dir, a free port, gone at the end.

    with running_postgres() as pg:               # PostgresCluster(port=..., socket_dir=...)
        url = pg.create_database("hub1")         # "postgresql://postgres@127.0.0.1:PORT/hub1"

pytest (import into a conftest.py or test module):

    from amalthea.testing.engines.postgres import postgres_cluster, postgres_url  # noqa: F401

``postgres_cluster`` is one cluster per session; ``postgres_url`` is a fresh, empty database
per test on it, so tests never see each other's rows.

The cluster never touches the host's own PostgreSQL (no /etc/postgresql, no pg_ctlcluster):
its data dir, log and unix socket all live in one temp dir, it listens on 127.0.0.1 only with
``trust`` auth, and fsync is off because a test database need not survive a power cut.
PostgreSQL refuses to run as root, so as root every server command runs as the ``postgres``
account (created by the Debian package), which then owns the temp dir.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from amalthea.testing.engines.apt import EngineUnavailable, ensure_commands

__all__ = ["PostgresCluster", "postgres_cluster", "postgres_url", "running_postgres"]

#: the Debian package with the server binaries (/usr/lib/postgresql/<major>/bin)
DEBIAN_PACKAGE = "postgresql"
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # several hubs per session, each with a pool
}


@dataclass
class PostgresCluster:
    state_dir: Path
    port: int
    bin_dir: Path
    user: str = "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.state_dir / "sock"

    def url(self, database: str = "postgres") -> str:
        """The plain URL a user writes in ``c.Amalthea.db_url`` (TCP on loopback)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self._autocommit(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._autocommit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _autocommit(self, sql: str) -> None:
        import psycopg  # the ``postgres`` extra

        # CREATE/DROP DATABASE cannot run inside a transaction block
        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.user, dbname="postgres",
            autocommit=True,
        ) as conn:  # fmt: skip
            conn.execute(sql)


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin, installing the Debian package if needed."""
    found = _bin_dirs()
    if not found:
        # pg_ctlcluster is postgresql-common's; the package pulls in the server binaries
        ensure_commands({"pg_ctlcluster": DEBIAN_PACKAGE})
        found = _bin_dirs()
    if not found:
        raise EngineUnavailable(
            f"no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
            f"(apt-get install --no-install-recommends {DEBIAN_PACKAGE})"
        )
    return found[-1]


def _bin_dirs() -> list[Path]:
    dirs = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    return sorted(dirs, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], what: str, timeout: float = 120) -> None:
    done = subprocess.run(
        _as_server_user(cmd), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise EngineUnavailable(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresCluster]:
    """Start a private cluster; stop it and delete its files on exit."""
    bin_dir = find_bin_dir()
    # not under pytest's tmp dirs: those are 0700 root-only, and the server runs as postgres
    state = Path(tempfile.mkdtemp(prefix="amalthea-pg-"))
    data = state / "data"
    try:
        (state / "sock").mkdir()
        if os.geteuid() == 0:
            for path in (state, state / "sock"):
                shutil.chown(path, "postgres", "postgres")
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-sync"],
            "initdb",
        )  # fmt: skip
        cluster = _start(bin_dir, state)
        try:
            yield cluster
        finally:
            subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                                 "stop"]),
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _start(bin_dir: Path, state: Path) -> PostgresCluster:
    # another process may grab the free port between our probe and the bind: retry a few times
    error: Exception | None = None
    for _ in range(3):
        port = _free_port()
        settings = {**SERVER_SETTINGS, "unix_socket_directories": str(state / "sock")}
        options = " ".join(f"-c {k}={v}" for k, v in settings.items()) + f" -p {port}"
        try:
            _run(
                [str(bin_dir / "pg_ctl"), "-D", str(state / "data"), "-l",
                 str(state / "server.log"), "-w", "-t", "60", "-o", options, "start"],
                "pg_ctl start",
            )  # fmt: skip
        except EngineUnavailable as e:
            log = (state / "server.log").read_text(errors="replace")[-2000:]
            error = EngineUnavailable(f"{e}\nserver log:\n{log}")
            time.sleep(0.2)
            continue
        return PostgresCluster(state_dir=state, port=port, bin_dir=bin_dir)
    raise error or EngineUnavailable("pg_ctl start failed")


# ---- pytest fixtures ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL cluster for the session (skips with the reason if unavailable)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'amalthea[postgres]')")
    try:
        with running_postgres() as cluster:
            yield cluster
    except EngineUnavailable as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")


@pytest.fixture
def postgres_url(
    postgres_cluster: PostgresCluster, request: pytest.FixtureRequest
) -> Iterator[str]:
    """URL of a fresh empty database for this test (dropped afterwards)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    name = f"{name}_{os.getpid()}_{time.monotonic_ns() % 1_000_000}"
    url = postgres_cluster.create_database(name)
    yield url
    with contextlib.suppress(Exception):
        postgres_cluster.drop_database(name)
