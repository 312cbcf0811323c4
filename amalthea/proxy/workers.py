"""``--workers N``: N worker processes share the public port (SO_REUSEPORT).

The supervisor (the process started from the command line) keeps the route table, the
store, the REST API and metrics; it does not proxy. Each worker is a separate Python
process (``python -m amalthea.proxy.worker``) with its own copy of the table, fed over a
Unix socket pair with newline-delimited JSON:

    supervisor -> worker   {"op": "put", "prefix", "data", "ts"} | {"op": "del", "prefix"}
                           | {"op": "synced"} (end of the initial snapshot)
    worker -> supervisor   {"op": "ready"} (listening) | {"op": "report", "activity":
                           {prefix: ts}, "stats": {...}} once a second

A route change reaches every worker before the API answers the next request the hub
makes (it is written to each pipe synchronously). The supervisor merges activity by
taking the latest timestamp, and sums the workers' counters for /metrics. A worker that
exits is started again with a fresh snapshot. The kernel spreads new connections over
the workers' sockets; one connection stays with one worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import asdict
from typing import Any

from .config import ProxyConfig
from .metrics import Stats
from .routes import Route, RouteTable

__all__ = ["WorkerPool"]

log = logging.getLogger("amalthea.proxy.workers")
READY_TIMEOUT = 20.0


def put_message(route: Route) -> bytes:
    return (
        json.dumps(
            {"op": "put", "prefix": route.prefix, "data": route.data, "ts": route.last_activity}
        )
        + "\n"
    ).encode()


class WorkerPool:
    def __init__(self, config: ProxyConfig, table: RouteTable, n: int) -> None:
        self.config = config
        self.table = table
        self.n = n
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._stats: dict[int, dict[str, Any]] = {}
        self._ready: dict[int, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        table.listeners.append(self._broadcast)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.n):
            self._ready[i] = asyncio.Event()
            self._tasks.append(loop.create_task(self._supervise(i)))
        waits = [asyncio.wait_for(e.wait(), READY_TIMEOUT) for e in self._ready.values()]
        try:
            await asyncio.gather(*waits)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(
                f"workers not listening after {READY_TIMEOUT}s; see their log lines above"
            ) from None

    async def stop(self) -> None:
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.kill()

    def stats(self) -> Stats:
        total = Stats()
        for snap in self._stats.values():
            total.add(snap)
        return total

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.returncode is None]

    # -- internals ---------------------------------------------------------------------
    def _broadcast(self, prefix: str, route: Route | None) -> None:
        line = (
            put_message(route)
            if route is not None
            else (json.dumps({"op": "del", "prefix": prefix}) + "\n").encode()
        )
        for w in self._writers.values():
            w.write(line)

    async def _supervise(self, i: int) -> None:
        while not self._stopping:
            parent, child = socket.socketpair()
            cfg = dict(asdict(self.config), auth_token="", workers=1)
            env = dict(
                os.environ,
                AMALTHEA_PROXY_WORKER=json.dumps({"fd": child.fileno(), "index": i, "config": cfg}),
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "amalthea.proxy.worker", env=env, pass_fds=(child.fileno(),)
            )
            child.close()
            self._procs[i] = proc
            reader, writer = await asyncio.open_unix_connection(sock=parent)
            # Register and snapshot with no await in between: no change can slip past.
            self._writers[i] = writer
            writer.write(b"".join(put_message(r) for r in self.table))
            writer.write(b'{"op": "synced"}\n')
            try:
                while line := await reader.readline():
                    self._handle(i, json.loads(line))
            except (ConnectionError, ValueError) as e:
                log.warning("worker %d pipe failed: %s", i, e)
            finally:
                self._writers.pop(i, None)
                writer.close()
            code = await proc.wait()
            self._stats.pop(i, None)
            if not self._stopping:
                log.error("worker %d (pid %d) exited with %s; starting it again", i, proc.pid, code)
                await asyncio.sleep(0.5)

    def _handle(self, i: int, msg: dict[str, Any]) -> None:
        if msg["op"] == "ready":
            self._ready[i].set()
        elif msg["op"] == "report":
            self._stats[i] = msg["stats"]
            for prefix, ts in msg["activity"].items():
                route = self.table.get(prefix)
                if route is not None and ts > route.last_activity:
                    route.last_activity = ts
