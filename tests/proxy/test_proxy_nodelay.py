"""Both legs of a spliced websocket have TCP_NODELAY, under asyncio and under uvloop.

The proxy relies on the event loop for this (asyncio and uvloop set TCP_NODELAY on every TCP
transport they create or accept). If a leg ever lost it, each small kernel message written
while an earlier one is unacknowledged would wait for a delayed ACK (up to 40 ms).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
import pytest
import uvloop
import websockets
from proxy_helpers import Upstream

from amalthea.proxy import ProxyConfig, ProxyServer

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def nodelay(transport: asyncio.BaseTransport) -> int:
    sock = transport.get_extra_info("socket")
    value: int = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    return value


async def spliced_legs() -> tuple[int, int]:
    """Open a websocket through the proxy; TCP_NODELAY of (client leg, target leg)."""
    config = ProxyConfig(
        ip="127.0.0.1", port=0, api_ip="127.0.0.1", api_port=0, auth_token="t", store="memory"
    )
    proxy, upstream = ProxyServer(config), Upstream()
    await proxy.startup()
    try:
        async with httpx.AsyncClient() as api:
            r = await api.post(
                f"http://127.0.0.1:{proxy.api_port}/api/routes/user/a",
                json={"target": upstream.url},
                headers={"Authorization": "token t"},
            )
            assert r.status_code == 201
        async with websockets.connect(f"ws://127.0.0.1:{proxy.port}/user/a/ws") as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            (conn,) = [c for c in proxy.ctx.connections if c.splice is not None]
            return nodelay(conn.transport), nodelay(conn.splice.transport)
    finally:
        await proxy.shutdown()
        await upstream.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_spliced_websocket_has_nodelay_on_both_legs(loop: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        assert runner.run(spliced_legs()) == (1, 1)
