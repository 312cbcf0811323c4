"""The hub's side of the proxy: start (or find) the proxy process and keep its routes.

Both built-ins speak the configurable-http-proxy REST API (jupyterhub-protocol.md §9):
``amalthea`` runs our own ``amalthea-proxy``; ``chp`` runs (or connects to) a real
configurable-http-proxy. Entry-point group ``amalthea.proxies``.

The proxy process is started in its own session and its pid is kept in
``<data_dir>/amalthea-proxy.pid``: it outlives the hub on purpose, so users' connections survive
a hub restart. A starting hub first tries the API with its token; if a proxy answers, it is
reused and its routes are reconciled instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Integer, List, Unicode
from traitlets.config import LoggingConfigurable

__all__ = ["AmaltheaProxy", "CHPProxy", "ProxyError"]


class ProxyError(Exception):
    pass


class CHPProxy(LoggingConfigurable):
    """A configurable-http-proxy compatible proxy, driven over its REST API."""

    api_url = Unicode(
        "", help="Proxy REST API URL; default http://127.0.0.1:<public port + 1>."
    ).tag(config=True)
    auth_token = Unicode(
        "", help="Proxy API token; default: generated and kept in the hub's secrets file."
    ).tag(config=True)
    should_start = Bool(
        True, help="Start the proxy process (False: connect to one that is already running)."
    ).tag(config=True)
    command = List(Unicode(), ["configurable-http-proxy"], help="Proxy command.").tag(config=True)
    extra_args = List(Unicode(), help="Extra command line arguments for the proxy.").tag(
        config=True
    )
    connect_timeout = Float(
        30, help="Seconds to wait for the proxy API before giving up at startup."
    ).tag(config=True)
    concurrency = Integer(10, help="Parallel calls to the proxy API.").tag(config=True)

    def __init__(
        self, public_url: str, hub_url: str, data_dir: str, token: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.public_url = public_url
        self.hub_url = hub_url  # e.g. http://127.0.0.1:8081 (error target gets /hub/error)
        self.data_dir = Path(data_dir)
        self.token = self.auth_token or token
        if not self.api_url:
            parts = urlsplit(public_url)
            self.api_url = f"http://127.0.0.1:{(parts.port or 80) + 1}"
        self.api_url = self.api_url.rstrip("/")
        self.pid_file = self.data_dir / f"{self._name}.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self._sem = asyncio.Semaphore(self.concurrency)
        self._http = AsyncHTTPClient()

    _name = "chp"

    # ---- process -------------------------------------------------------------------------
    def build_command(self) -> list[str]:
        pub = urlsplit(self.public_url)
        api = urlsplit(self.api_url)
        return [
            *self.command,
            "--ip", pub.hostname or "",
            "--port", str(pub.port or 80),
            "--api-ip", api.hostname or "127.0.0.1",
            "--api-port", str(api.port or 8001),
            "--error-target", f"{self.hub_url}/hub/error",
            *self.extra_args,
        ]  # fmt: skip

    async def start(self) -> None:
        if await self._api_ok():
            self.log.info("Using the proxy already running at %s", self.api_url)
            return
        if not self.should_start:
            await self._wait_api()
            return
        cmd = self.build_command()
        env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=self.token)
        log_path = self.data_dir / f"{self._name}.log"
        self.log.info("Starting proxy: %s (log: %s)", " ".join(cmd), log_path)
        try:
            self.process = _launch(cmd, env, log_path)
        except FileNotFoundError as e:
            raise ProxyError(
                f"Cannot start the proxy: {cmd[0]!r} not found. Install it or set "
                "c.Amalthea.proxy_class / c.CHPProxy.command."
            ) from e
        self.pid_file.write_text(str(self.process.pid))
        await self._wait_api()

    async def _wait_api(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        delay = 0.02
        while loop.time() < deadline:
            if await self._api_ok():
                return
            if self.process is not None and self.process.poll() is not None:
                tail = _tail(self.data_dir / f"{self._name}.log")
                raise ProxyError(
                    f"The proxy exited with status {self.process.returncode} at startup. "
                    f"Last lines of its log:\n{tail}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        raise ProxyError(
            f"The proxy API at {self.api_url} did not answer within {self.connect_timeout:g} s."
        )

    async def _api_ok(self) -> bool:
        try:
            await self._request("GET", "", timeout=2.0)
            return True
        except (OSError, HTTPClientError, ProxyError):
            return False

    async def stop(self) -> None:
        """Stop a proxy we started (or one a previous hub started, by its pid file)."""
        pid = self.process.pid if self.process else _read_pid(self.pid_file)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if self.process is not None:
            await asyncio.to_thread(_wait, self.process, 5)
        self.pid_file.unlink(missing_ok=True)

    # ---- routes --------------------------------------------------------------------------
    async def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        body = {**data, "target": target, "jupyterhub": True}
        await self._request("POST", _path(routespec), body)

    async def delete_route(self, routespec: str) -> None:
        try:
            await self._request("DELETE", _path(routespec))
        except HTTPClientError as e:
            if e.code != 404:
                raise

    async def get_all_routes(self) -> dict[str, dict[str, Any]]:
        """routespec (with trailing slash) -> {"target", "data"}, only hub-managed routes."""
        raw = await self._request("GET", "")
        out: dict[str, dict[str, Any]] = {}
        for key, route in (raw or {}).items():
            if not route.get("jupyterhub"):
                continue
            spec = key if key.endswith("/") else key + "/"
            data = {k: v for k, v in route.items() if k != "target"}
            out[spec] = {"target": route.get("target"), "data": data}
        return out

    async def _request(
        self, method: str, path: str, body: Any = None, timeout: float = 10.0
    ) -> Any:
        url = f"{self.api_url}/api/routes{path}"
        req = HTTPRequest(
            url, method=method, headers={"Authorization": f"token {self.token}"},
            body=json.dumps(body) if body is not None else None,
            connect_timeout=timeout, request_timeout=timeout,
        )  # fmt: skip
        async with self._sem:
            for attempt in range(5):
                try:
                    resp = await self._http.fetch(req)
                    break
                except HTTPClientError as e:
                    if e.code == 403:
                        raise ProxyError(f"The proxy at {self.api_url} refused our token.") from e
                    if e.code < 500 or attempt == 4:
                        raise
                    await asyncio.sleep(0.1 * 2**attempt)
        return json.loads(resp.body) if resp.body else None


class AmaltheaProxy(CHPProxy):
    """Our own proxy, ``amalthea-proxy`` (same REST API, faster, TCP_NODELAY both ways)."""

    command = List(
        Unicode(), help="Proxy command; default: amalthea-proxy next to this Python."
    ).tag(config=True)
    route_store = Unicode(
        "",
        help="Where the proxy persists its routes so a restarted proxy keeps serving every "
        "running server: 'sqlite:PATH', 'file:PATH', 'redis://...' or 'memory'. "
        "Default: sqlite:<data_dir>/amalthea-proxy-routes.sqlite.",
    ).tag(config=True)
    _name = "amalthea-proxy"

    def build_command(self) -> list[str]:
        if not self.command:
            exe = Path(sys.executable).with_name("amalthea-proxy")
            self.command = [str(exe)] if exe.exists() else [shutil.which("amalthea-proxy") or
                                                              "amalthea-proxy"]  # fmt: skip
        store = self.route_store or f"sqlite:{self.data_dir / 'amalthea-proxy-routes.sqlite'}"
        return [*super().build_command(), "--store", store]


def _launch(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start the proxy in its own session so it outlives the hub (and Ctrl-C in its terminal)."""
    with open(log_path, "ab") as logf:
        return subprocess.Popen(
            cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def _path(routespec: str) -> str:
    return quote(routespec.rstrip("/") or "/", safe="/@~")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
