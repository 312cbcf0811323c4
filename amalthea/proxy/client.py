"""What the hub uses to drive a proxy with CHP's REST API (amalthea-proxy or CHP itself).

* :class:`ProxyAPIClient` - ``add_route``, ``delete_route``, ``get_routes``,
  ``get_route``, ``inactive_since`` over keep-alive connections (plain asyncio, no deps);
* :func:`start_proxy` - start ``amalthea-proxy`` as a subprocess and wait until its API
  answers; returns a :class:`ProxyProcess` to stop it.

Errors: :class:`ProxyAPIError` carries the HTTP status and the proxy's message.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

__all__ = ["ProxyAPIClient", "ProxyAPIError", "ProxyProcess", "start_proxy"]


class ProxyAPIError(Exception):
    """The proxy answered with an unexpected status (``status``), or could not be reached
    (``status`` 599)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"proxy API answered {status}: {message}")
        self.status = status


class _Response:
    def __init__(self) -> None:
        self.status = 0
        self.body: list[bytes] = []
        self.done = False
        self.keep_alive = True

    def on_body(self, b: bytes) -> None:
        self.body.append(b)

    def on_message_complete(self) -> None:
        self.done = True


class ProxyAPIClient:
    """Async client for ``/api/routes``; at most ``concurrency`` requests in flight."""

    def __init__(
        self, api_url: str, token: str = "", concurrency: int = 10, timeout: float = 10.0
    ) -> None:
        parts = urlsplit(api_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.token = token
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._sem = asyncio.Semaphore(concurrency)

    async def add_route(self, prefix: str, target: str, data: dict[str, Any] | None = None) -> None:
        body = dict(data or {})
        body["target"] = target
        await self._request("POST", self._path(prefix), json.dumps(body).encode(), (201,))

    async def delete_route(self, prefix: str) -> bool:
        """Delete a route; ``False`` if there was none."""
        status, _ = await self._request("DELETE", self._path(prefix), b"", (204, 404))
        return status == 204

    async def get_routes(self) -> dict[str, dict[str, Any]]:
        _, body = await self._request("GET", "/api/routes", b"", (200,))
        result: dict[str, dict[str, Any]] = json.loads(body)
        return result

    async def get_route(self, prefix: str) -> dict[str, Any] | None:
        status, body = await self._request("GET", self._path(prefix), b"", (200, 404))
        return json.loads(body) if status == 200 else None

    async def inactive_since(self, since: datetime) -> dict[str, dict[str, Any]]:
        """Routes whose last_activity is before ``since`` (aware datetimes; naive = UTC)."""
        q = quote(since.isoformat(), safe="")
        _, body = await self._request("GET", f"/api/routes?inactive_since={q}", b"", (200,))
        result: dict[str, dict[str, Any]] = json.loads(body)
        return result

    async def close(self) -> None:
        for _, w in self._idle:
            w.close()
        self._idle.clear()

    @staticmethod
    def _path(prefix: str) -> str:
        return "/api/routes" + quote("/" + prefix.strip("/"), safe="/@~")

    async def _request(
        self, method: str, path: str, body: bytes, ok: tuple[int, ...]
    ) -> tuple[int, bytes]:
        async with self._sem:
            for attempt in (0, 1):
                try:
                    return await asyncio.wait_for(
                        self._once(method, path, body, ok, fresh=attempt == 1), self.timeout
                    )
                except (OSError, asyncio.IncompleteReadError, ConnectionError) as e:
                    if attempt == 1:
                        raise ProxyAPIError(
                            599, f"cannot reach {self.host}:{self.port}: {e}"
                        ) from e
                except TimeoutError as e:
                    raise ProxyAPIError(599, f"no answer in {self.timeout}s") from e
        raise AssertionError("unreachable")

    async def _once(
        self, method: str, path: str, body: bytes, ok: tuple[int, ...], fresh: bool
    ) -> tuple[int, bytes]:
        if self._idle and not fresh:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if self.token:
            head += f"Authorization: token {self.token}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        resp = _Response()
        parser = httptools.HttpResponseParser(resp)
        while not resp.done:
            data = await reader.read(65536)
            if not data:
                writer.close()
                raise ConnectionError("connection closed before the response ended")
            parser.feed_data(data)
        status = parser.get_status_code()
        if parser.should_keep_alive():
            self._idle.append((reader, writer))
        else:
            writer.close()
        payload = b"".join(resp.body)
        if status not in ok:
            raise ProxyAPIError(status, payload.decode("utf-8", "replace")[:500])
        return status, payload


@dataclass
class ProxyProcess:
    """A running ``amalthea-proxy`` subprocess."""

    proc: asyncio.subprocess.Process
    public_url: str
    api_url: str
    token: str
    log_path: str
    args: list[str] = field(default_factory=list)

    def log_tail(self, n: int = 4000) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def client(self) -> ProxyAPIClient:
        return ProxyAPIClient(self.api_url, self.token)

    async def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (routes are saved), then SIGKILL after ``timeout``; returns exit code."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode if self.proc.returncode is not None else -1


async def start_proxy(
    port: int,
    api_port: int,
    *,
    ip: str = "127.0.0.1",
    api_ip: str = "127.0.0.1",
    token: str = "",
    extra_args: list[str] | None = None,
    ready_timeout: float = 15.0,
    env: dict[str, str] | None = None,
    log_path: str | None = None,
) -> ProxyProcess:
    """Start ``python -m amalthea.proxy`` and wait until ``GET /api/routes`` answers 200.

    The proxy's log goes to ``log_path`` (default: a temporary file, see
    ``ProxyProcess.log_path``). Raises ``RuntimeError`` with the end of that log if the
    proxy exits or is not ready within ``ready_timeout`` seconds.
    """
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="amalthea-proxy-", suffix=".log")
        os.close(fd)
    args = [
        sys.executable,
        "-m",
        "amalthea.proxy",
        "--ip",
        ip,
        "--port",
        str(port),
        "--api-ip",
        api_ip,
        "--api-port",
        str(api_port),
        *(extra_args or []),
    ]
    penv = dict(os.environ if env is None else env)
    penv["CONFIGPROXY_AUTH_TOKEN"] = token
    with open(log_path, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
        proc = await asyncio.create_subprocess_exec(*args, env=penv, stderr=log)
    pp = ProxyProcess(
        proc, f"http://{ip}:{port}", f"http://{api_ip}:{api_port}", token, log_path, args
    )
    client = pp.client()
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"amalthea-proxy exited with {proc.returncode}: {pp.log_tail()}")
            try:
                await client.get_routes()
                break
            except ProxyAPIError:
                if time.monotonic() > deadline:
                    await pp.stop()
                    raise RuntimeError(
                        f"amalthea-proxy not ready after {ready_timeout}s: "
                        f"{' '.join(args)}\n{pp.log_tail()}"
                    ) from None
                await asyncio.sleep(0.05)
    finally:
        await client.close()
    return pp
