"""The spawner contract.

One Spawner instance exists per (user, server name) while the hub knows that server. The hub's
lifecycle module (amalthea.hub.lifecycle) is the only caller; it owns timeouts, the state machine
and the readiness check. A spawner only:

- ``start()``: launch the server with ``context.env`` and return where it listens (or raise
  SpawnError). It may return before the server answers HTTP; the hub polls readiness.
- ``poll()``: ``None`` while the server process/container/job is alive, else an exit status.
- ``stop()``: make it not run any more; idempotent.
- ``progress()``: optional async iterator of ProgressEvent while starting (queued, pulling...).
- ``get_state()``/``load_state()``: JSON-able facts that let a restarted hub find a running
  server again (pid, container id, job id) without restarting it.
- ``logs(n)``: the last n lines the server wrote, shown to the user and admins on failure.

Errors: raise :class:`SpawnError` with ``user_message`` (shown on the progress page) and
``layer`` naming what failed ("spawner", "container engine", "batch queue", "single-user server").
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from traitlets import Dict, Float, Integer, List, Unicode, Union
from traitlets.config import LoggingConfigurable

from amalthea.plugins import ABCTraitletsMeta
from amalthea.spawners.units import parse_cpu, parse_memory


class SpawnError(Exception):
    """The server could not be started; ``user_message`` is safe to show the owner."""

    def __init__(
        self, user_message: str, *, layer: str = "spawner", log_tail: list[str] | None = None
    ) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.layer = layer
        self.log_tail = log_tail or []


@dataclass(frozen=True)
class ServerAddress:
    """Where a started server listens, as the hub and proxy reach it."""

    ip: str
    port: int
    proto: str = "http"

    @property
    def url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.proto}://{host}:{self.port}"

    def as_state(self) -> dict[str, Any]:
        """The keys spawners persist in get_state() so a restarted hub can reach the server."""
        return {"ip": self.ip, "port": self.port}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ServerAddress | None:
        """Inverse of :meth:`as_state`; None when the state holds no address."""
        if not state.get("ip") or not state.get("port"):
            return None
        return cls(str(state["ip"]), int(state["port"]))


@dataclass
class ProgressEvent:
    """One step of a spawn, as shown on the progress page (0-100)."""

    progress: int
    message: str
    ready: bool = False
    failed: bool = False


@dataclass
class SpawnContext:
    """Everything a spawner needs from the hub, and nothing more (no database, no app)."""

    username: str
    server_name: str
    #: the JUPYTERHUB_* environment contract, computed by the hub (see jupyterhub-protocol.md §8.1)
    env: dict[str, str]
    user_options: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    admin: bool = False
    #: directory where the hub keeps per-server files (logs, per-user dirs for local-shared)
    data_dir: str = "."
    #: URL the server can use to report its own host/port (batch systems), or ""
    report_url: str = ""

    @property
    def url_prefix(self) -> str:
        return self.env.get("JUPYTERHUB_SERVICE_PREFIX", "/")


class Spawner(LoggingConfigurable, metaclass=ABCTraitletsMeta):
    """Base class of all spawners."""

    cmd = List(
        Unicode(),
        ["amalthea-singleuser"],
        help="Command that starts the single-user server. jupyterhub-singleuser works too.",
    ).tag(config=True)
    args = List(Unicode(), help="Extra arguments appended to cmd.").tag(config=True)
    environment = Dict(
        help="Extra environment for the server; overrides the hub's JUPYTERHUB_* values."
    ).tag(config=True)
    ip = Unicode("127.0.0.1", help="Address the server listens on.").tag(config=True)
    port = Integer(0, help="Port the server listens on; 0 picks a free one.").tag(config=True)
    default_url = Unicode("", help="Where the server sends people first, e.g. /lab or /tree.").tag(
        config=True
    )
    notebook_dir = Unicode("", help="Root directory of the file browser ('~' = home).").tag(
        config=True
    )
    start_timeout = Float(
        60, help="Seconds start() may take before the spawn counts as failed."
    ).tag(config=True)
    http_timeout = Float(
        30, help="Seconds after start() for the server to answer HTTP before the spawn fails."
    ).tag(config=True)
    poll_interval = Float(30, help="Seconds between checks that a running server is alive.").tag(
        config=True
    )
    mem_limit = Union(
        [Integer(), Unicode()],
        allow_none=True,
        default_value=None,
        help="Memory limit: bytes or a string with K/M/G/T suffix, e.g. '2G'.",
    ).tag(config=True)
    cpu_limit = Union(
        [Float(), Unicode()],
        allow_none=True,
        default_value=None,
        help="CPU limit in cores, e.g. 1.5.",
    ).tag(config=True)
    pids_limit = Integer(
        0, help="Maximum number of processes/threads of the server (0 = no limit)."
    ).tag(config=True)
    log_lines = Integer(200, help="How many lines of the server's log the hub keeps.").tag(
        config=True
    )

    def __init__(self, context: SpawnContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    # ---- the contract -------------------------------------------------------------------
    @abstractmethod
    async def start(self) -> ServerAddress:
        """Launch the server; return its address. Raise SpawnError on failure."""

    @abstractmethod
    async def poll(self) -> int | None:
        """None while alive, else an exit status (0 if unknown but gone)."""

    @abstractmethod
    async def stop(self, now: bool = False) -> None:
        """Stop the server (gracefully unless ``now``). Must be idempotent."""

    async def progress(self) -> AsyncIterator[ProgressEvent]:
        """Spawner-specific progress while starting. Default: nothing beyond the hub's own."""
        return
        yield  # pragma: no cover - makes this an async generator

    def get_state(self) -> dict[str, Any]:
        """JSON-able state needed to find the server again after a hub restart."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what get_state() returned."""

    async def logs(self, lines: int = 50) -> list[str]:
        """The last ``lines`` lines of the server's output."""
        return []

    # ---- helpers for subclasses ------------------------------------------------------------
    def build_env(self) -> dict[str, str]:
        """The server's environment: hub contract, limits, then ``environment`` overrides."""
        env = dict(self.context.env)
        if self.mem_limit is not None:
            env["MEM_LIMIT"] = str(self.mem_limit_bytes)
        if self.cpu_limit is not None:
            env["CPU_LIMIT"] = str(self.cpu_limit_cores)
        if self.default_url:
            env["JUPYTERHUB_DEFAULT_URL"] = self.default_url
        if self.notebook_dir:
            env["JUPYTERHUB_ROOT_DIR"] = self.notebook_dir
        for key, value in self.environment.items():
            env[key] = str(value(self) if callable(value) else value)
        return env

    @property
    def mem_limit_bytes(self) -> int | None:
        return None if self.mem_limit is None else parse_memory(self.mem_limit)

    @property
    def cpu_limit_cores(self) -> float | None:
        return None if self.cpu_limit is None else parse_cpu(self.cpu_limit)

    def command(self) -> list[str]:
        return [*self.cmd, *self.args]

    async def wait_for_exit(self, timeout: float) -> int | None:
        """Poll until the server is gone or ``timeout`` passes; returns the exit status or None."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            status = await self.poll()
            if status is not None:
                return status
            await asyncio.sleep(0.1)
        return None
