"""Malformed and hostile input: answered 400/431/503 and closed, never smuggled or routed."""

from __future__ import annotations

import asyncio

import pytest
from proxy_helpers import Upstream, raw_request

from amalthea.proxy import ProxyServer


@pytest.fixture
async def routed(proxy: ProxyServer, upstream: Upstream):
    alice = Upstream()
    proxy.ctx.table.add("/user/alice", {"target": alice.url})
    proxy.ctx.table.add("/user/bob", {"target": upstream.url})
    yield proxy, alice, upstream
    await alice.close()


def status_of(response: bytes) -> int:
    assert response, "connection closed without an answer"
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /user/bob HTTP/1.1 extra\r\nHost: x\r\n\r\n",  # bad request line
        b"G@T /user/bob HTTP/1.1\r\nHost: x\r\n\r\n",  # bad method
        b"GET /user/bob HTTP/1.1\nHost: x\n\n",  # bare LF
        b"GET /user/bob HTTP/1.1\r\nHost : x\r\n\r\n",  # space before colon
        b"GET /user/bob HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",  # NUL in value
        b"GET /user/bob HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",  # obs-fold
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # CL + TE
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET http://evil/user/bob HTTP/1.1\r\nHost: x\r\n\r\n",  # absolute-form
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS to plain port
    ],
)
async def test_malformed_is_400_and_closed(routed, request_bytes: bytes) -> None:
    proxy, _, _ = routed
    out = await raw_request(proxy.port, request_bytes)
    assert status_of(out) == 400
    assert b"Connection: close" in out
    # raw_request returned, so the proxy closed the connection; nothing reached bob
    assert b"body_len" not in out


async def test_smuggled_second_request_never_reaches_target(routed) -> None:
    proxy, _, _bob = routed
    # classic CL.TE: if a proxy used CL and the target TE, "GET /user/alice" would be smuggled
    payload = (
        b"POST /user/bob HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /user/alice/x HTTP/1.1\r\n\r\n"
    )
    out = await raw_request(proxy.port, payload)
    assert status_of(out) == 400 and out.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize(
    "path",
    [
        "/user/alice/../bob/",
        "/user/alice/%2e%2e/bob/",
        "/user/alice/%2E%2E/bob",
        "/user/alice/.%2e/bob/",
        "/user/alice/./../bob",
    ],
)
async def test_dot_segments_rejected(routed, path: str) -> None:
    proxy, _, _ = routed
    out = await raw_request(proxy.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status_of(out) == 400


@pytest.mark.parametrize(
    "path",
    [
        "/user/alice%2F..%2Fbob/",
        "/user/alice%2f..%2fbob",
        "/user/alice\\..\\bob/",
    ],
)
async def test_encoded_slashes_do_not_cross_routes(routed, path: str) -> None:
    proxy, _, _ = routed
    out = await raw_request(
        proxy.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    # one opaque segment "alice/../bob": matches neither alice nor bob, and there is no "/"
    assert status_of(out) == 404


async def test_double_slashes_route_like_single(routed) -> None:
    proxy, alice, _ = routed
    out = await raw_request(
        proxy.port, b"GET //user//alice//x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status_of(out) == 200
    assert f'"port": {alice.port}'.encode() in out
    assert b'"uri": "//user//alice//x"' in out  # forwarded as received


async def test_oversized_headers_431(routed) -> None:
    proxy, _, _ = routed
    big = b"X-Big: " + b"a" * 70_000 + b"\r\n"
    out = await raw_request(proxy.port, b"GET /user/bob HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert status_of(out) == 431
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(1000))
    out = await raw_request(proxy.port, b"GET /user/bob HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(out) == 431
    out = await raw_request(proxy.port, b"GET /" + b"u" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert status_of(out) == 431


async def test_connection_limit(proxy_config) -> None:
    proxy_config.max_connections = 5
    server = ProxyServer(proxy_config)
    await server.startup()
    try:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
        await asyncio.sleep(0.05)
        out = await raw_request(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(out) == 503
        assert len(server.ctx.connections) == 5
        for _, w in held:
            w.close()
        await asyncio.sleep(0.1)
        out = await raw_request(
            server.port, b"GET /_chp_healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status_of(out) == 200
    finally:
        await server.shutdown()


async def test_idle_keep_alive_closed(proxy_config) -> None:
    proxy_config.keep_alive_timeout = 300
    server = ProxyServer(proxy_config)
    await server.startup()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(3):
            assert await reader.read() == b""  # closed by the proxy, no request needed
        writer.close()
    finally:
        await server.shutdown()
