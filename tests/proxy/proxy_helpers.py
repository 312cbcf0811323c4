"""Shared helpers for the proxy tests: a real tornado upstream and raw-socket HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket


@tornado.web.stream_request_body
class EchoHandler(tornado.web.RequestHandler):
    """Answers every method with what it received; ``?size=N`` streams N bytes (chunked)."""

    def prepare(self) -> None:
        self.body_len = 0
        self.body_head = b""

    def data_received(self, chunk: bytes) -> None:
        self.body_len += len(chunk)
        if len(self.body_head) < 1024:
            self.body_head += chunk[:1024]

    async def _answer(self) -> None:
        size = int(self.get_query_argument("size", "0"))
        if size:
            chunk = b"x" * 65536
            sent = 0
            while sent < size:
                n = min(len(chunk), size - sent)
                self.write(chunk[:n])
                await self.flush()
                sent += n
            return
        status = int(self.get_query_argument("status", "200"))
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.write(
            json.dumps(
                {
                    "method": self.request.method,
                    "uri": self.request.uri,
                    "headers": dict(self.request.headers.get_all()),
                    "body_len": self.body_len,
                    "body_head": self.body_head.decode("latin-1"),
                    "port": self.request.connection.stream.socket.getsockname()[1]
                    if self.request.connection.stream.socket.family != socket.AF_UNIX
                    else 0,
                }
            )
        )

    get = post = put = delete = patch = options = _answer  # type: ignore[assignment]

    async def head(self) -> None:
        self.set_header("Content-Length", "1234")


class WSEcho(tornado.websocket.WebSocketHandler):
    def on_message(self, message: Any) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


def make_app() -> tornado.web.Application:
    return tornado.web.Application([(r".*/ws", WSEcho), (r".*", EchoHandler)])


class Upstream:
    def __init__(self, unix_path: str | None = None) -> None:
        self.server = tornado.httpserver.HTTPServer(
            make_app(), max_body_size=1 << 40, max_buffer_size=1 << 20
        )
        if unix_path:
            sock = tornado.netutil.bind_unix_socket(unix_path)
            self.server.add_sockets([sock])
            self.url = "unix:" + unix_path
            self.port = 0
        else:
            socks = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
            self.server.add_sockets(socks)
            self.port = socks[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        self.server.stop()
        await self.server.close_all_connections()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or ``timeout``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                out += chunk
    finally:
        writer.close()
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Read one Content-Length or chunked response from a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            body = body[:-2]
            if size == 0:
                break
    else:
        body = await reader.read()
    return status, headers, body
