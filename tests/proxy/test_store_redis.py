"""Two proxy replicas sharing routes and activity through a real redis-server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import httpx
import pytest
from conftest import TOKEN
from proxy_helpers import Upstream, free_port

from amalthea.proxy import ProxyConfig, ProxyServer

pytest.importorskip("redis")


@pytest.fixture
def redis_url(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    r = redis.Redis(port=port)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    r.close()
    yield f"redis://127.0.0.1:{port}/0?prefix=test"
    proc.terminate()
    proc.wait(10)


async def _replica(url: str) -> ProxyServer:
    server = ProxyServer(
        ProxyConfig(
            ip="127.0.0.1", port=0, api_ip="127.0.0.1", api_port=0, auth_token=TOKEN, store=url
        )
    )
    await server.startup()
    return server


async def _until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "replicas did not converge"
        await asyncio.sleep(0.05)


async def test_replicas_share_routes_and_activity(redis_url, upstream: Upstream) -> None:
    a, b = await _replica(redis_url), await _replica(redis_url)
    hdrs = {"Authorization": f"token {TOKEN}"}
    try:
        async with httpx.AsyncClient(headers=hdrs) as c:
            r = await c.post(
                f"http://127.0.0.1:{a.api_port}/api/routes/user/alice",
                json={"target": upstream.url, "user": "alice"},
            )
            assert r.status_code == 201
            await _until(lambda: b.ctx.table.get("/user/alice") is not None)
            r = await c.get(f"http://127.0.0.1:{b.port}/user/alice/x")
            assert r.status_code == 200
            # b saw traffic; within a sync interval a reports it too
            seen_on_b = b.ctx.table.get("/user/alice").last_activity
            a.ctx.table.get("/user/alice").last_activity = 0.0
            await _until(lambda: a.ctx.table.get("/user/alice").last_activity >= seen_on_b)
            r = await c.delete(f"http://127.0.0.1:{b.api_port}/api/routes/user/alice")
            assert r.status_code == 204
            await _until(lambda: a.ctx.table.get("/user/alice") is None)
            await c.post(
                f"http://127.0.0.1:{a.api_port}/api/routes/user/bob", json={"target": upstream.url}
            )
    finally:
        await a.shutdown()
        await b.shutdown()
    # a fresh replica starts with what is in Redis
    c2 = await _replica(redis_url)
    try:
        assert [r.prefix for r in c2.ctx.table] == ["/user/bob"]
    finally:
        await c2.shutdown()


def test_unreachable_redis_fails_at_start() -> None:
    with pytest.raises(ValueError, match="cannot read routes"):
        ProxyServer(ProxyConfig(store=f"redis://127.0.0.1:{free_port()}/0")).store.load()
