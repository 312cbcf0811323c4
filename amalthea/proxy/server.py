"""Composition root of one proxy process: build, start the listeners, sweep, stop.

Listeners: the public port (``ClientConnection``), the REST API and, optionally, metrics
(both ``SmallHTTPProtocol``). A sweeper task ticks every quarter second: it refreshes the
coarse clock the hot path reads, enforces timeouts, and closes idle pooled connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import ssl
import time
from typing import Any

from .api import RoutesAPI
from .config import ProxyConfig
from .context import ProxyContext
from .errors import simple_response
from .http import ClientConnection
from .metrics import render_metrics
from .routes import RouteTable
from .smallhttp import Request, Response, SmallHTTPProtocol
from .store import FileStore, RouteStore, StoreRecord, open_store
from .upstream import UpstreamPool

__all__ = ["ProxyServer"]

log = logging.getLogger("amalthea.proxy")
SWEEP_INTERVAL = 0.25


class ProxyServer:
    def __init__(self, config: ProxyConfig) -> None:
        config.validate()
        self.config = config
        self.store: RouteStore = open_store(config.store)
        self.ctx = ProxyContext(config=config, table=RouteTable(), pool=UpstreamPool())
        self.api = RoutesAPI(self.ctx.table, self.store, config.auth_token, self.ctx.stats)
        self._servers: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self.port = 0
        self.api_port = 0
        self.metrics_port = 0

    # -- lifecycle ---------------------------------------------------------------------
    async def startup(self) -> None:
        _raise_fd_limit()
        self._load_routes()
        loop = asyncio.get_running_loop()
        cfg = self.config
        tls = _tls_context(cfg) if cfg.tls else None
        ctx = self.ctx
        ctx.proto_bytes = b"https" if tls else b"http"
        public = await loop.create_server(
            lambda: ClientConnection(ctx), cfg.ip or None, cfg.port, ssl=tls, backlog=2048,
            reuse_address=True,
        )
        self._servers.append(public)
        self.port = public.sockets[0].getsockname()[1]
        ctx.port_bytes = str(self.port).encode()
        api_port = cfg.api_port or (cfg.port + 1 if cfg.port else 0)
        api = await loop.create_server(lambda: SmallHTTPProtocol(self.api), cfg.api_ip,
                                       api_port, reuse_address=True)
        self._servers.append(api)
        self.api_port = api.sockets[0].getsockname()[1]
        if cfg.metrics_port:
            metrics = await loop.create_server(lambda: SmallHTTPProtocol(self._metrics),
                                               cfg.metrics_ip or None, cfg.metrics_port,
                                               reuse_address=True)
            self._servers.append(metrics)
            self.metrics_port = metrics.sockets[0].getsockname()[1]
        self._sweeper = loop.create_task(self._sweep_forever())
        follow = getattr(self.store, "follow", None)
        if follow is not None:
            # a shared store: apply the other replicas' route changes as they happen
            self._follower = loop.create_task(follow(ctx.table))
        if not cfg.auth_token:
            log.warning("REST API without authentication: CONFIGPROXY_AUTH_TOKEN is not set")
        log.info("proxying %s://%s:%d, API on http://%s:%d, %d routes loaded",
                 ctx.proto_bytes.decode(), cfg.ip or "*", self.port, cfg.api_ip,
                 self.api_port, len(ctx.table))

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set."""
        await self.startup()
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        for s in self._servers:
            s.close()
        for task in (self._sweeper, self._follower):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        for c in list(self.ctx.connections):
            c.abort()
        self.ctx.pool.close_all()
        self.store.close(self._records())
        log.info("stopped; %d routes saved", len(self.ctx.table))

    # -- internals ---------------------------------------------------------------------
    def _records(self) -> list[StoreRecord]:
        return [(r.prefix, r.data, r.last_activity) for r in self.ctx.table]

    def _load_routes(self) -> None:
        table = self.ctx.table
        for prefix, data, ts in self.store.load():
            try:
                table.add(prefix, data, ts)
            except (ValueError, KeyError) as e:
                log.error("skipping stored route %s: %s", prefix, e)
        if self.config.default_target:
            route = table.add("/", {"target": self.config.default_target})
            self.store.put("/", route.data, route.last_activity)

    async def _sweep_forever(self) -> None:
        ctx = self.ctx
        cfg = self.config
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
                elif (proxy_timeout and ex.upstream is not None and not ex.response_started
                      and now - ex.sent_at > proxy_timeout):
                    self._timed_out(conn, ex, 504)
            if isinstance(self.store, FileStore):
                self.store.maybe_compact(self._records())

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
        conn.ctx.stats.status[status] += 1
        conn.active = None
        conn.abort()

    def _metrics(self, req: Request) -> Response:
        path = req.url.split(b"?", 1)[0]
        if path != b"/metrics":
            return Response(404, b"Not Found\n", b"text/plain")
        body = render_metrics(self.ctx.stats, self._gauges)
        return Response(200, body, b"text/plain; version=0.0.4; charset=utf-8")

    def _gauges(self) -> dict[str, float]:
        return {
            "routes": len(self.ctx.table),
            "client_connections": len(self.ctx.connections),
            "idle_upstream_connections": self.ctx.pool.idle_count(),
        }


def _tls_context(cfg: ProxyConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.ssl_cert, cfg.ssl_key,
                            password=os.environ.get("CONFIGPROXY_SSL_KEY_PASSPHRASE"))
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"cannot load --ssl-cert {cfg.ssl_cert!r} / --ssl-key "
                         f"{cfg.ssl_key!r}: {e}") from e
    return ctx


def _raise_fd_limit() -> None:
    """Use the hard file-descriptor limit; each proxied connection costs two descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
