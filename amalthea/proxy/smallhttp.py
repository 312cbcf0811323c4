"""A minimal HTTP/1.1 server protocol for the control plane (REST API, metrics).

Not the hot path: requests are read whole (bounded), handed to a synchronous handler, and
answered with Content-Length. Keep-alive is honoured, pipelining is not needed by clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools

from .errors import simple_response

__all__ = ["Request", "Response", "SmallHTTPProtocol"]

MAX_BODY = 16 << 20


@dataclass
class Request:
    method: str
    url: bytes
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: bytes = b"application/json"


Handler = Callable[[Request], Response]


class SmallHTTPProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.req: Request | None = None
        self.body: list[bytes] = []
        self.size = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(413 if self.size > MAX_BODY else 400, str(e))

    def _fail(self, status: int, detail: str) -> None:
        self.transport.write(simple_response(status, detail.encode() + b"\n", close=True))
        self.transport.close()

    def on_message_begin(self) -> None:
        self.req = Request("", b"")
        self.body = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        assert self.req is not None
        self.req.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.req is not None
        self.req.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            raise ValueError("body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        req = self.req
        assert req is not None
        req.method = self.parser.get_method().decode("latin-1")
        req.body = b"".join(self.body)
        resp = self.handler(req)
        keep = self.parser.should_keep_alive()
        self.transport.write(
            simple_response(resp.status, resp.body, resp.content_type, close=not keep)
        )
        if not keep:
            self.transport.close()
