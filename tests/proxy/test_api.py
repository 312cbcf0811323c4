"""The REST API against CHP's documented behaviour (ref/proxy.md section 2)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import TOKEN
from proxy_helpers import free_port

from amalthea.proxy import ProxyAPIClient, ProxyAPIError, ProxyServer

TARGET = "http://127.0.0.1:9"


async def test_token_required(proxy: ProxyServer, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anon:
        r = await anon.get("/api/routes")
        assert r.status_code == 403 and r.content == b""
        r = await anon.get("/api/routes", headers={"Authorization": "token wrong"})
        assert r.status_code == 403
        r = await anon.post(
            "/api/routes/x", json={"target": TARGET}, headers={"Authorization": "Bearer " + TOKEN}
        )
        assert r.status_code == 403
    assert (await api.get("/api/routes")).status_code == 200


async def test_add_get_delete(api: httpx.AsyncClient) -> None:
    data = {"target": TARGET, "jupyterhub": True, "user": "alice", "server_name": ""}
    r = await api.post("/api/routes/user/alice", json=data)
    assert r.status_code == 201 and r.content == b""
    r = await api.get("/api/routes")
    assert r.status_code == 200
    routes = r.json()
    assert list(routes) == ["/user/alice"]
    got = routes["/user/alice"]
    assert {k: v for k, v in got.items() if k != "last_activity"} == data
    datetime.strptime(got["last_activity"], "%Y-%m-%dT%H:%M:%S.%fZ")
    r = await api.get("/api/routes/user/alice")
    assert r.status_code == 200 and r.json()["user"] == "alice"
    assert (await api.get("/api/routes/user/nobody")).status_code == 404
    assert (await api.delete("/api/routes/user/alice")).status_code == 204
    assert (await api.delete("/api/routes/user/alice")).status_code == 404
    assert (await api.get("/api/routes")).json() == {}


async def test_prefix_normalised(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/routes/user/a%20b/", json={"target": TARGET})).status_code == 201
    assert list((await api.get("/api/routes")).json()) == ["/user/a b"]
    assert (await api.delete("/api/routes/user/a%20b")).status_code == 204


async def test_bad_bodies(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/routes/x", content=b"{not json")
    assert r.status_code == 400
    for body in ({}, {"target": 5}, [], {"target": None}):
        r = await api.post("/api/routes/x", json=body)
        assert r.status_code == 400, body
        assert b"target" in r.content
    r = await api.post("/api/routes/x", json={"target": "ftp://nope"})
    assert r.status_code == 400
    assert (await api.get("/api/routes")).json() == {}


async def test_methods_and_paths(api: httpx.AsyncClient) -> None:
    assert (await api.put("/api/routes/x", json={"target": TARGET})).status_code == 405
    assert (await api.patch("/api/routes")).status_code == 405
    assert (await api.get("/api/")).status_code == 404
    assert (await api.get("/api/routesx")).status_code == 404
    assert (await api.get("/")).status_code == 404


async def test_inactive_since(proxy: ProxyServer, api: httpx.AsyncClient) -> None:
    await api.post("/api/routes/old", json={"target": TARGET})
    await api.post("/api/routes/new", json={"target": TARGET})
    proxy.ctx.table.get("/old").last_activity -= 3600  # type: ignore[union-attr]
    since = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    for name in ("inactive_since", "inactiveSince"):
        r = await api.get("/api/routes", params={name: since})
        assert list(r.json()) == ["/old"]
    r = await api.get("/api/routes", params={"inactive_since": "2000-01-01T00:00:00.000Z"})
    assert r.json() == {}
    r = await api.get("/api/routes", params={"inactive_since": "yesterday-ish"})
    assert r.status_code == 400


async def test_default_target_is_route_root(proxy_config, tmp_path) -> None:
    proxy_config.default_target = "http://127.0.0.1:9"
    server = ProxyServer(proxy_config)
    await server.startup()
    try:
        client = ProxyAPIClient(f"http://127.0.0.1:{server.api_port}", TOKEN)
        routes = await client.get_routes()
        assert routes["/"]["target"] == "http://127.0.0.1:9"
        await client.close()
    finally:
        await server.shutdown()


async def test_python_client(proxy: ProxyServer) -> None:
    client = ProxyAPIClient(f"http://127.0.0.1:{proxy.api_port}", TOKEN)
    try:
        await asyncio.gather(
            *(
                client.add_route(f"/user/u{i}", TARGET, {"user": f"u{i}", "jupyterhub": True})
                for i in range(50)
            )
        )
        routes = await client.get_routes()
        assert len(routes) == 50 and routes["/user/u7"]["user"] == "u7"
        assert (await client.get_route("/user/u7"))["jupyterhub"] is True  # type: ignore[index]
        assert await client.get_route("/user/none") is None
        assert await client.delete_route("/user/u7") is True
        assert await client.delete_route("/user/u7") is False
        future = datetime.now(UTC) + timedelta(seconds=5)
        assert len(await client.inactive_since(future)) == 49
        with pytest.raises(ProxyAPIError) as e:
            await client.add_route("/x", "not a url")
        assert e.value.status == 400
    finally:
        await client.close()
    bad = ProxyAPIClient(f"http://127.0.0.1:{proxy.api_port}", "wrong")
    with pytest.raises(ProxyAPIError) as e:
        await bad.get_routes()
    assert e.value.status == 403
    await bad.close()


async def test_metrics_endpoint(proxy_config) -> None:
    proxy_config.metrics_ip = "127.0.0.1"
    proxy_config.metrics_port = free_port()  # 0 would mean "off"
    server = ProxyServer(proxy_config)
    await server.startup()
    try:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{server.metrics_port}/metrics")
        assert r.status_code == 200
        assert "amalthea_proxy_requests_web" in r.text
        assert "process_resident_memory_bytes" in r.text
    finally:
        await server.shutdown()
