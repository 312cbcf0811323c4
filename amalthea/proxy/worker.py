"""Entry point of one ``--workers`` process (started by ``workers.WorkerPool``)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from typing import Any

from .config import ProxyConfig
from .context import ProxyContext
from .frontend import Frontend, raise_fd_limit
from .routes import RouteTable
from .upstream import UpstreamPool

log = logging.getLogger("amalthea.proxy.worker")
REPORT_EVERY = 4  # sweeps (of 0.25 s)


def _apply(table: RouteTable, msg: dict[str, Any]) -> None:
    if msg["op"] == "put":
        try:
            table.add(msg["prefix"], msg["data"], msg["ts"])
        except (ValueError, KeyError) as e:
            log.error("ignoring route %s: %s", msg.get("prefix"), e)
    elif msg["op"] == "del":
        table.remove(msg["prefix"])


async def run(fd: int, config: ProxyConfig) -> None:
    raise_fd_limit()
    ctx = ProxyContext(config=config, table=RouteTable(), pool=UpstreamPool())
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    while True:
        msg = json.loads(await reader.readline())
        if msg["op"] == "synced":
            break
        _apply(ctx.table, msg)
    frontend = Frontend(ctx)
    reported: dict[str, float] = {r.prefix: r.last_activity for r in ctx.table}
    ticks = 0

    def report(now: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks % REPORT_EVERY:
            return
        fresh = {
            r.prefix: r.last_activity
            for r in ctx.table
            if r.last_activity > reported.get(r.prefix, 0.0)
        }
        reported.update(fresh)
        writer.write(
            (
                json.dumps({"op": "report", "activity": fresh, "stats": ctx.stats.snapshot()})
                + "\n"
            ).encode()
        )

    frontend.on_sweep.append(report)
    await frontend.start(reuse_port=True)
    writer.write(b'{"op": "ready"}\n')
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def follow() -> None:
        # Route changes until the supervisor goes away; then this worker stops too.
        while line := await reader.readline():
            _apply(ctx.table, json.loads(line))
        stop.set()

    follower = loop.create_task(follow())
    try:
        await stop.wait()
    finally:
        follower.cancel()
        await frontend.stop()


def main() -> None:
    spec = json.loads(os.environ.pop("AMALTHEA_PROXY_WORKER"))
    config = ProxyConfig(**spec["config"])
    logging.basicConfig(
        level=config.log_level.upper()
        if config.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR")
        else "INFO",
        format=f"%(asctime)s %(levelname)s worker{spec['index']} %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if config.access_log:
        logging.getLogger("amalthea.proxy.access").setLevel(logging.INFO)
    try:
        import uvloop

        uvloop.run(run(spec["fd"], config))
    except ImportError:  # pragma: no cover
        asyncio.run(run(spec["fd"], config))


if __name__ == "__main__":
    main()
