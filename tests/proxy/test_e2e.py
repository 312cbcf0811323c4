"""The real ``amalthea-proxy`` process: start, restart with routes kept, TLS, big bodies."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys

import httpx
import pytest
from proxy_helpers import Upstream, free_port, read_response

from amalthea.proxy import ProxyProcess, start_proxy

TOKEN = "e2e-token"


async def _start(*extra: str) -> ProxyProcess:
    return await start_proxy(free_port(), free_port(), token=TOKEN, extra_args=list(extra))


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("kind", ["file", "sqlite"])
async def test_restart_keeps_routes(tmp_path, upstream: Upstream, kind: str) -> None:
    store = f"{kind}:{tmp_path}/routes.{kind}"
    p = await _start("--store", store)
    try:
        c = p.client()
        for i in range(100):
            await c.add_route(f"/user/u{i}", upstream.url, {"user": f"u{i}", "jupyterhub": True})
        await c.delete_route("/user/u0")
        async with httpx.AsyncClient() as web:
            assert (await web.get(p.public_url + "/user/u5/x")).status_code == 200
        before = await c.get_routes()
        await c.close()
    finally:
        assert await p.stop() == 0
    p = await _start("--store", store)
    try:
        c = p.client()
        after = await c.get_routes()
        await c.close()
        assert after.keys() == before.keys() and len(after) == 99
        assert after["/user/u5"]["user"] == "u5"
        # last_activity saved at shutdown: the request above made u5 newer than u6
        assert after["/user/u5"]["last_activity"] >= before["/user/u5"]["last_activity"]
        async with httpx.AsyncClient() as web:
            r = await web.get(p.public_url + "/user/u5/x")
        assert r.status_code == 200 and r.json()["uri"] == "/user/u5/x"
    finally:
        await p.stop()


async def test_memory_store_forgets(upstream: Upstream) -> None:
    p = await _start()
    c = p.client()
    await c.add_route("/user/a", upstream.url)
    await c.close()
    await p.stop()
    p = await _start()
    c = p.client()
    assert await c.get_routes() == {}
    await c.close()
    await p.stop()


async def test_bad_flags_fail_cleanly() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "amalthea.proxy", "--store", "bogus"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0 and "--store 'bogus'" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "amalthea.proxy",
            "--ssl-cert",
            "/nonexistent",
            "--ssl-key",
            "/nonexistent",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0 and "/nonexistent" in r.stderr


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return str(d / "cert.pem"), str(d / "key.pem")


async def test_tls_termination(cert, upstream: Upstream) -> None:
    import websockets

    p = await _start("--ssl-cert", cert[0], "--ssl-key", cert[1])
    try:
        c = p.client()
        await c.add_route("/user/a", upstream.url)
        await c.close()
        url = p.public_url.replace("http://", "https://")
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=cert[0])) as web:
            r = await web.get(url + "/user/a/x")
        assert r.status_code == 200
        assert r.json()["headers"]["X-Forwarded-Proto"] == "https"
        ctx = ssl.create_default_context(cafile=cert[0])
        async with websockets.connect(url.replace("https", "wss") + "/user/a/ws", ssl=ctx) as ws:
            await ws.send("over tls")
            assert await ws.recv() == "over tls"
    finally:
        await p.stop()


async def test_access_log_and_log_levels(upstream: Upstream, tmp_path) -> None:
    p = await _start("--access-log")
    try:
        c = p.client()
        await c.add_route("/user/a", upstream.url)
        await c.close()
        async with httpx.AsyncClient() as web:
            await web.get(p.public_url + "/user/a/logged")
    finally:
        await p.stop()
    log = p.log_tail(100_000)
    assert '"url": "/user/a/logged"' in log and '"status": 200' in log


async def _upload(port: int, path: str, size: int) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"u" * (1 << 20)
    sent = 0
    while sent < size:
        n = min(len(chunk), size - sent)
        writer.write(chunk[:n])
        await writer.drain()
        sent += n
    status, _, body = await read_response(reader)
    writer.close()
    return status, body


async def _stream_bodies(upload: int, download: int) -> float:
    up = Upstream()
    p = await _start()
    try:
        c = p.client()
        await c.add_route("/user/a", up.url)
        await c.close()
        port = int(p.public_url.rsplit(":", 1)[1])
        status, body = await _upload(port, "/user/a/upload", upload)
        assert status == 200 and f'"body_len": {upload}'.encode() in body
        if download:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /user/a/dl?size={download} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await reader.readuntil(b"\r\n\r\n")
            got = 0
            while True:
                line = await reader.readuntil(b"\r\n")
                n = int(line.strip(), 16)
                await reader.readexactly(n + 2)
                if n == 0:
                    break
                got += n
            writer.close()
            assert got == download
        peak = _peak_rss_mb(p.proc.pid)
        print(f"proxy peak RSS {peak:.1f} MB")
        return peak
    finally:
        await p.stop()
        await up.close()


async def test_large_bodies_stream_without_buffering() -> None:
    """300 MB up, 100 MB down: the proxy's peak RSS stays far below the body sizes."""
    peak = await _stream_bodies(300 << 20, 100 << 20)
    assert peak < 100, f"proxy peak RSS {peak:.0f} MB"


@pytest.mark.slow
async def test_two_gigabyte_upload_under_100mb() -> None:
    peak = await _stream_bodies(2 << 30, 0)
    assert peak < 100, f"proxy peak RSS {peak:.0f} MB"


async def test_env_token_and_pid_file(tmp_path) -> None:
    pid_file = tmp_path / "proxy.pid"
    p = await _start("--pid-file", str(pid_file))
    try:
        assert int(pid_file.read_text()) == p.proc.pid
        async with httpx.AsyncClient() as c:
            assert (await c.get(p.api_url + "/api/routes")).status_code == 403
    finally:
        assert await p.stop() == 0
    assert os.path.exists(p.log_path)
