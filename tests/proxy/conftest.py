from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from proxy_helpers import Upstream

from amalthea.proxy import ProxyConfig, ProxyServer

TOKEN = "test-token"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    yield up
    await up.close()


@pytest.fixture
def proxy_config(tmp_path) -> ProxyConfig:
    return ProxyConfig(
        ip="127.0.0.1", port=0, api_ip="127.0.0.1", api_port=0, auth_token=TOKEN, store="memory"
    )


@pytest.fixture
async def proxy(proxy_config: ProxyConfig) -> AsyncIterator[ProxyServer]:
    """An in-process proxy on ephemeral ports, in the test's event loop."""
    server = ProxyServer(proxy_config)
    await server.startup()
    yield server
    await server.shutdown()


@pytest.fixture
async def api(proxy: ProxyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{proxy.api_port}",
        headers={"Authorization": f"token {TOKEN}"},
    ) as client:
        yield client


@pytest.fixture
async def web(proxy: ProxyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy.port}") as client:
        yield client
