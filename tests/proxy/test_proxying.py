"""Proxying over real sockets: an in-process proxy in front of a real tornado upstream."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets
from proxy_helpers import Upstream, free_port, raw_request, read_response

from amalthea.proxy import ProxyServer


async def add(api: httpx.AsyncClient, prefix: str, target: str) -> None:
    r = await api.post(f"/api/routes{prefix}", json={"target": target})
    assert r.status_code == 201


async def test_get_forwards_full_path_host_and_xfwd(proxy, api, web, upstream) -> None:
    await add(api, "/user/alice", upstream.url)
    r = await web.get(
        "/user/alice/api/x?q=1%202",
        headers={"Host": "hub.example:8443", "X-Forwarded-For": "10.0.0.1"},
    )
    assert r.status_code == 200
    seen = r.json()
    assert seen["uri"] == "/user/alice/api/x?q=1%202"
    h = seen["headers"]
    assert h["Host"] == "hub.example:8443"
    assert h["X-Forwarded-For"] == "10.0.0.1,127.0.0.1"
    assert h["X-Forwarded-Proto"] == "http"
    assert h["X-Forwarded-Port"] == str(proxy.port)
    assert h["X-Forwarded-Host"] == "hub.example:8443"


async def test_most_specific_route_wins(api, web, upstream) -> None:
    other = Upstream()
    try:
        await add(api, "/", upstream.url)
        await add(api, "/user/alice", other.url)
        assert (await web.get("/user/alice/x")).json()["port"] == other.port
        assert (await web.get("/user/alicex")).json()["port"] == upstream.port
        assert (await web.get("/hub/home")).json()["port"] == upstream.port
        await api.delete("/api/routes/user/alice")
        assert (await web.get("/user/alice/x")).json()["port"] == upstream.port
    finally:
        await other.close()


async def test_host_routing(proxy_config, upstream) -> None:
    proxy_config.host_routing = True
    server = ProxyServer(proxy_config)
    await server.startup()
    try:
        server.ctx.table.add("/alice.example.org", {"target": upstream.url})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
            r = await c.get("/lab/tree", headers={"Host": "Alice.Example.org:8443"})
            assert r.status_code == 200 and r.json()["uri"] == "/lab/tree"
            r = await c.get("/lab/tree", headers={"Host": "bob.example.org"})
            assert r.status_code == 404
    finally:
        await server.shutdown()


async def test_target_path_is_prepended(api, web, upstream) -> None:
    await add(api, "/svc", upstream.url + "/base/")
    assert (await web.get("/svc/a")).json()["uri"] == "/base/svc/a"


async def test_post_body_and_chunked_upload(api, web, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    r = await web.post("/user/a/echo", content=b"hello world")
    assert r.json()["body_len"] == 11 and r.json()["body_head"] == "hello world"

    async def gen():
        for _ in range(100):
            yield b"z" * 10_000

    r = await web.post("/user/a/echo", content=gen())  # httpx sends chunked
    seen = r.json()
    assert seen["headers"].get("Transfer-Encoding") == "chunked"
    assert seen["body_len"] == 1_000_000


async def test_streamed_chunked_response(api, web, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    size = 5_000_000
    got = 0
    async with web.stream("GET", "/user/a/big", params={"size": size}) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        async for chunk in r.aiter_raw():
            got += len(chunk)
    assert got == size


async def test_keep_alive_both_sides(proxy, api, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    ports = set()
    for i in range(20):
        writer.write(f"GET /user/a/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, _, body = await read_response(reader)
        assert status == 200
        ports.add(body)
    writer.close()
    # one client connection, and the upstream connection was pooled (1 idle left over)
    assert proxy.ctx.pool.idle_count() == 1


async def test_pipelined_requests_answered_in_order(proxy, api, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"".join(
            f"POST /user/a/{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".encode()
            for i in range(5)
        )
    )
    for i in range(5):
        status, _, body = await read_response(reader)
        assert status == 200 and f'"/user/a/{i}"'.encode() in body
    writer.close()


async def test_head_and_http10(proxy, api, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"HEAD /user/a/x HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head and b"Content-Length: 1234" in head
    writer.write(b"GET /user/a/y HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection still works
    status, _, _ = await read_response(reader)
    assert status == 200
    writer.close()
    out = await raw_request(proxy.port, b"GET /user/a/z HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.") and b" 200 " in out.split(b"\r\n")[0]
    assert b"transfer-encoding: chunked" not in out.lower()


async def test_expect_100_continue(proxy, api, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /user/a/c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    line = await reader.readuntil(b"\r\n\r\n")
    assert line.startswith(b"HTTP/1.1 100")
    writer.write(b"data")
    status, _, body = await read_response(reader)
    assert status == 200 and b'"body_len": 4' in body
    writer.close()


async def test_no_route_404(proxy, web) -> None:
    r = await web.get("/user/nobody/")
    assert r.status_code == 404 and "404" in r.text


async def test_health_endpoints(web) -> None:
    r = await web.get("/_chp_healthz")
    assert r.status_code == 200 and r.json() == {"status": "OK"}
    assert (await web.get("/_amalthea/health")).status_code == 200


async def test_upstream_down_503_then_error_target(proxy, api, web, upstream) -> None:
    await add(api, "/user/gone", f"http://127.0.0.1:{free_port()}")
    r = await web.get("/user/gone/x")
    assert r.status_code == 503
    # CHP's --error-target: GET <target>/<code>?url=<original url>, body relayed, code kept
    proxy.config.error_target = upstream.url + "/hub/error"
    r = await web.get("/user/gone/x?a=b")
    assert r.status_code == 503
    assert r.json()["uri"] == "/hub/error/503?url=%2Fuser%2Fgone%2Fx%3Fa%3Db"


async def test_upstream_status_passed_through(api, web, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    assert (await web.get("/user/a/x", params={"status": 418})).status_code == 418


async def test_proxy_timeout(proxy_config) -> None:
    # a target that accepts but never answers
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    proxy_config.proxy_timeout = 300
    server = ProxyServer(proxy_config)
    await server.startup()
    try:
        server.ctx.table.add("/slow", {"target": f"http://127.0.0.1:{port}"})
        async with httpx.AsyncClient() as c:
            t0 = time.monotonic()
            r = await c.get(f"http://127.0.0.1:{server.port}/slow")
        assert r.status_code == 504
        assert time.monotonic() - t0 < 2
    finally:
        await server.shutdown()
        silent.close()


async def test_client_timeout(proxy_config, upstream) -> None:
    proxy_config.timeout = 300
    server = ProxyServer(proxy_config)
    await server.startup()
    try:
        server.ctx.table.add("/user/a", {"target": upstream.url})
        # the body never comes: the request is dropped, not held forever
        out = await raw_request(
            server.port, b"POST /user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        )
        assert out.startswith(b"HTTP/1.1 408")
    finally:
        await server.shutdown()


async def test_unix_socket_target(api, web, tmp_path) -> None:
    up = Upstream(unix_path=str(tmp_path / "up.sock"))
    try:
        await add(api, "/user/u", up.url)
        assert (await web.get("/user/u/x")).json()["uri"] == "/user/u/x"
        quoted = "http+unix://" + str(tmp_path / "up.sock").replace("/", "%2F")
        await add(api, "/user/v", quoted)
        assert (await web.get("/user/v/y")).json()["uri"] == "/user/v/y"
    finally:
        await up.close()


async def test_websocket_echo_and_activity(proxy, api, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    route = proxy.ctx.table.get("/user/a")
    assert route is not None
    route.last_activity = 0
    async with websockets.connect(f"ws://127.0.0.1:{proxy.port}/user/a/ws") as ws:
        route.last_activity = 0
        for msg in ("hello", b"\x00\x01binary", "x" * 200_000):
            await ws.send(msg)
            assert await ws.recv() == msg
    await asyncio.sleep(0.3)  # the coarse clock ticks every 0.25 s
    assert route.last_activity > time.time() - 5
    assert proxy.ctx.stats.requests_ws == 1


async def test_websocket_no_route_and_target_down(proxy, api) -> None:
    with pytest.raises(websockets.InvalidStatus) as e:
        async with websockets.connect(f"ws://127.0.0.1:{proxy.port}/nothing/ws"):
            pass
    assert e.value.response.status_code == 404
    await add(api, "/user/gone", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(websockets.InvalidStatus) as e:
        async with websockets.connect(f"ws://127.0.0.1:{proxy.port}/user/gone/ws"):
            pass
    assert e.value.response.status_code == 503


async def test_http_activity_updates(proxy, api, web, upstream) -> None:
    await add(api, "/user/a", upstream.url)
    route = proxy.ctx.table.get("/user/a")
    route.last_activity = 0  # type: ignore[union-attr]
    await web.get("/user/a/x", params={"status": 302})
    assert route.last_activity == 0  # type: ignore[union-attr]  # as CHP: >= 300 don't count
    await web.get("/user/a/x")
    assert route.last_activity > 0  # type: ignore[union-attr]


async def test_many_concurrent_clients(api, proxy, upstream) -> None:
    # raw sockets: httpx's own pool is far slower than the proxy at this concurrency
    await add(api, "/user/a", upstream.url)
    seen = []

    async def client(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for i in range(6):
            writer.write(f"GET /user/a/{k}/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, body = await read_response(reader)
            assert status == 200
            seen.append(body)
        writer.close()

    await asyncio.gather(*(client(k) for k in range(50)))
    assert len(seen) == 300


async def test_slow_reader_backpressure(proxy, api, upstream) -> None:
    """A client that stops reading pauses the target instead of filling the proxy's memory."""
    await add(api, "/user/a", upstream.url)
    size = 200 << 20
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port, limit=1 << 16)
    writer.write(f"GET /user/a/dl?size={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(1.0)  # not reading: kernel buffers fill, then the proxy's
    (conn,) = proxy.ctx.connections
    assert conn.transport.get_write_buffer_size() < 4 << 20
    assert conn.active.upstream.read_paused
    got = 0
    while chunk := await reader.read(1 << 20):
        got += len(chunk)
        if got > size:  # body plus chunk framing
            break
    writer.close()
    assert got > size
