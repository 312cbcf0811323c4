"""Composition root of the proxy: build from config, start, stop. No proxying logic here.

One process (``--workers 1``): this process serves the public port (``Frontend``), the
REST API, and optionally metrics. With ``--workers N`` the public port is served by N
worker processes (``WorkerPool``) and this process keeps the API, the store and metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .api import RoutesAPI
from .config import ProxyConfig
from .context import ProxyContext
from .frontend import Frontend, raise_fd_limit
from .metrics import render_metrics
from .routes import RouteTable
from .smallhttp import Request, Response, SmallHTTPProtocol
from .store import FileStore, RouteStore, StoreRecord, open_store
from .upstream import UpstreamPool
from .workers import WorkerPool

__all__ = ["ProxyServer"]

log = logging.getLogger("amalthea.proxy")
MAINTENANCE_INTERVAL = 1.0


class ProxyServer:
    def __init__(self, config: ProxyConfig) -> None:
        config.validate()
        self.config = config
        self.store: RouteStore = open_store(config.store)
        self.ctx = ProxyContext(config=config, table=RouteTable(), pool=UpstreamPool())
        self.api = RoutesAPI(self.ctx.table, self.store, config.auth_token, self.ctx.stats)
        self.frontend: Frontend | None = None
        self.workers: WorkerPool | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.api_port = 0
        self.metrics_port = 0

    # -- lifecycle ---------------------------------------------------------------------
    async def startup(self) -> None:
        raise_fd_limit()
        self._load_routes()
        loop = asyncio.get_running_loop()
        cfg = self.config
        if cfg.workers > 1:
            if not cfg.port:
                cfg.port = _pick_port(cfg.ip)  # every worker must bind the same port
            self.workers = WorkerPool(cfg, self.ctx.table, cfg.workers)
            await self.workers.start()
            self.port = cfg.port
        else:
            self.frontend = Frontend(self.ctx)
            await self.frontend.start()
            self.port = self.frontend.port
        api_port = cfg.api_port or (cfg.port + 1 if cfg.port else 0)
        api = await loop.create_server(
            lambda: SmallHTTPProtocol(self.api), cfg.api_ip, api_port, reuse_address=True
        )
        self._servers.append(api)
        self.api_port = api.sockets[0].getsockname()[1]
        if cfg.metrics_port:
            metrics = await loop.create_server(
                lambda: SmallHTTPProtocol(self._metrics),
                cfg.metrics_ip or None,
                cfg.metrics_port,
                reuse_address=True,
            )
            self._servers.append(metrics)
            self.metrics_port = metrics.sockets[0].getsockname()[1]
        self._tasks.append(loop.create_task(self._maintain()))
        follow = getattr(self.store, "follow", None)
        if follow is not None:
            # a shared store: apply the other replicas' route changes as they happen
            self._tasks.append(loop.create_task(follow(self.ctx.table)))
        if not cfg.auth_token:
            log.warning("REST API without authentication: CONFIGPROXY_AUTH_TOKEN is not set")
        log.info(
            "proxying %s://%s:%d (%d worker%s), API on http://%s:%d, %d routes loaded",
            "https" if cfg.tls else "http",
            cfg.ip or "*",
            self.port,
            cfg.workers,
            "s" if cfg.workers > 1 else "",
            cfg.api_ip,
            self.api_port,
            len(self.ctx.table),
        )

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
        for task in self._tasks:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self.frontend is not None:
            await self.frontend.stop()
        if self.workers is not None:
            await self.workers.stop()
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

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            if self.frontend is None:
                self.ctx.now = time.time()
            if isinstance(self.store, FileStore):
                self.store.maybe_compact(self._records())

    def _metrics(self, req: Request) -> Response:
        path = req.url.split(b"?", 1)[0]
        if path != b"/metrics":
            return Response(404, b"Not Found\n", b"text/plain")
        stats = self.ctx.stats
        if self.workers is not None:
            stats = self.workers.stats()
            stats.api = self.ctx.stats.api
        body = render_metrics(stats, self._gauges)
        return Response(200, body, b"text/plain; version=0.0.4; charset=utf-8")

    def _gauges(self) -> dict[str, float]:
        return {
            "routes": len(self.ctx.table),
            "client_connections": len(self.ctx.connections),
            "idle_upstream_connections": self.ctx.pool.idle_count(),
            "workers": len(self.workers.pids()) if self.workers else 1,
        }


def _pick_port(ip: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((ip or "0.0.0.0", 0))
        return int(s.getsockname()[1])
