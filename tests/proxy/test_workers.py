"""``--workers 2``: two processes share the port; routes and activity stay consistent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from proxy_helpers import Upstream, free_port, raw_request

from amalthea.proxy import start_proxy

pytestmark = pytest.mark.slow


async def _get(port: int, path: str) -> tuple[int, bytes]:
    """One request on a new connection (the kernel picks a worker per connection)."""
    out = await raw_request(
        port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def _health_pids(port: int, n: int) -> set[int]:
    pids = set()
    for _ in range(n):
        _, body = await _get(port, "/_amalthea/health")
        pids.add(json.loads(body)["pid"])
    return pids


async def test_two_workers(upstream: Upstream, tmp_path) -> None:
    port = free_port()
    p = await start_proxy(
        port,
        free_port(),
        token="t",
        extra_args=[
            "--workers",
            "2",
            "--store",
            f"sqlite:{tmp_path}/r.db",
            "--metrics-port",
            str(free_port()),
            "--metrics-ip",
            "127.0.0.1",
        ],
    )
    client = p.client()
    try:
        await asyncio.sleep(0.5)
        pids = await _health_pids(port, 40)
        assert len(pids) == 2 and p.proc.pid not in pids
        await client.add_route("/user/a", upstream.url, {"user": "a"})
        # the API answered, so every worker already has the route
        for _ in range(20):
            assert (await _get(port, "/user/a/x"))[0] == 200
        before = (await client.get_route("/user/a"))["last_activity"]
        await asyncio.sleep(1.5)  # workers report activity once a second
        await _get(port, "/user/a/y")
        deadline = time.monotonic() + 5
        while (await client.get_route("/user/a"))["last_activity"] == before:
            assert time.monotonic() < deadline, "activity from workers never arrived"
            await asyncio.sleep(0.2)
        # a killed worker comes back with the current routes
        victim = pids.pop()
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(2.0)
        new_pids = await _health_pids(port, 40)
        assert victim not in new_pids and len(new_pids) == 2
        for _ in range(10):
            assert (await _get(port, "/user/a/z"))[0] == 200
        await client.delete_route("/user/a")
        for _ in range(10):
            assert (await _get(port, "/user/a/z"))[0] == 404
    finally:
        await client.close()
        assert await p.stop() == 0
    for pid in new_pids:  # workers end with the supervisor
        for _ in range(50):
            if not os.path.exists(f"/proc/{pid}"):
                break
            await asyncio.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived the supervisor"
