"""The public side of one process: the listener, and the sweeper that keeps it honest.

The sweeper ticks every quarter second: it refreshes the coarse clock the hot path reads
(``ctx.now``), closes idle keep-alive connections, enforces ``--timeout`` and
``--proxy-timeout``, and closes idle pooled target connections. Used by a single-process
proxy (``server.py``) and by each worker process (``worker.py``).
"""

from __future__ import annotations

import asyncio
import os
import resource
import ssl
import time
from typing import Any

from .config import ProxyConfig
from .context import ProxyContext
from .errors import simple_response
from .http import ClientConnection

__all__ = ["Frontend", "raise_fd_limit", "tls_context"]

SWEEP_INTERVAL = 0.25


class Frontend:
    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        #: called on every sweep (e.g. to compact a store or report activity)
        self.on_sweep: list[Any] = []

    async def start(self, reuse_port: bool = False) -> None:
        cfg = self.ctx.config
        tls = tls_context(cfg) if cfg.tls else None
        ctx = self.ctx
        ctx.proto_bytes = b"https" if tls else b"http"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(ctx),
            cfg.ip or None,
            cfg.port,
            ssl=tls,
            backlog=2048,
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ctx.port_bytes = str(self.port).encode()
        self._sweeper = loop.create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
        for c in list(self.ctx.connections):
            c.abort()
        self.ctx.pool.close_all()

    async def _sweep_forever(self) -> None:
        ctx = self.ctx
        cfg = ctx.config
        keep_alive = cfg.keep_alive_timeout / 1000
        timeout = cfg.timeout / 1000
        proxy_timeout = cfg.proxy_timeout / 1000
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = ctx.now = time.time()
            ctx.pool.sweep(now)
            for conn in list(ctx.connections):
                ex = conn.active
                if ex is None:
                    if conn.splice is None and keep_alive and now - conn.last_io > keep_alive:
                        conn.abort()
                elif timeout and now - conn.last_io > timeout:
                    self._timed_out(conn, ex, 408)
                elif (
                    proxy_timeout
                    and ex.upstream is not None
                    and not ex.response_started
                    and now - ex.sent_at > proxy_timeout
                ):
                    self._timed_out(conn, ex, 504)
            for hook in self.on_sweep:
                hook(now)

    def _timed_out(self, conn: ClientConnection, ex: Any, status: int) -> None:
        self.ctx.stats.upstream_errors += 1
        if ex.response_started or conn.closed:
            conn.abort()
            return
        up = ex.upstream
        if up is not None:
            up.client = None
            up.close()
        detail = b"target did not answer in time\n" if status == 504 else b"request too slow\n"
        conn.transport.write(simple_response(status, detail, close=True))
        self.ctx.stats.status[status] += 1
        conn.active = None
        conn.abort()


def tls_context(cfg: ProxyConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(
            cfg.ssl_cert, cfg.ssl_key, password=os.environ.get("CONFIGPROXY_SSL_KEY_PASSPHRASE")
        )
    except (OSError, ssl.SSLError) as e:
        raise ValueError(
            f"cannot load --ssl-cert {cfg.ssl_cert!r} / --ssl-key {cfg.ssl_key!r}: {e}"
        ) from e
    return ctx


def raise_fd_limit() -> None:
    """Use the hard file-descriptor limit; each proxied connection costs two descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
