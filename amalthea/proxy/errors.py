"""Answers the proxy writes itself: error pages, health, and the --error-target fetch.

With ``--error-target URL`` an error is answered as CHP does: ``GET URL/<code>?url=<escaped
original path>`` is fetched and its body relayed (content type kept) with the original code.
If that fetch fails, or no error target is set, a small built-in HTML page is sent.
"""

from __future__ import annotations

import asyncio
import html
from http import HTTPStatus
from urllib.parse import quote, urlsplit

__all__ = ["error_page", "fetch_error_target", "simple_response"]

_ERROR_FETCH_TIMEOUT = 5.0
_ERROR_BODY_LIMIT = 1 << 20


def simple_response(
    status: int,
    body: bytes = b"",
    content_type: bytes = b"text/plain; charset=utf-8",
    close: bool = False,
    head_only: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response with Content-Length."""
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b"Error"
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    if body or status not in (204, 304):
        lines.append(b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body)))
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head_only:
        lines.append(body)
    return b"".join(lines)


def error_page(status: int, detail: str = "") -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    text = html.escape(detail or phrase)
    return (
        f"<!DOCTYPE html><html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{status} {phrase}</h1><p>{text}</p></body></html>\n"
    ).encode()


async def fetch_error_target(error_target: str, status: int, url: bytes) -> tuple[bytes, bytes]:
    """GET ``<error_target>/<status>?url=...``; return (content_type, body) or raise OSError."""
    parts = urlsplit(error_target)
    if parts.scheme not in ("http", "") or not parts.hostname:
        raise OSError(f"unsupported --error-target {error_target!r}")
    path = parts.path.rstrip("/") + f"/{status}?url=" + quote(url.decode("latin-1"), safe="")
    host = parts.hostname
    port = parts.port or 80
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
        "Accept: text/html\r\n\r\n"
    ).encode()

    async def fetch() -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            data = await reader.read(_ERROR_BODY_LIMIT)
            while len(data) < _ERROR_BODY_LIMIT:
                more = await reader.read(_ERROR_BODY_LIMIT)
                if not more:
                    break
                data += more
        finally:
            writer.close()
        return _parse_simple_response(data)

    return await asyncio.wait_for(fetch(), _ERROR_FETCH_TIMEOUT)


def _parse_simple_response(data: bytes) -> tuple[bytes, bytes]:
    import httptools

    class _Collect:
        content_type = b"text/html; charset=utf-8"
        chunks: list[bytes]

        def __init__(self) -> None:
            self.chunks = []

        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() == b"content-type":
                self.content_type = value

        def on_body(self, body: bytes) -> None:
            self.chunks.append(body)

    c = _Collect()
    parser = httptools.HttpResponseParser(c)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError as e:
        raise OSError(f"bad response from error target: {e}") from e
    return c.content_type, b"".join(c.chunks)
