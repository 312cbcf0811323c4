"""Is the server up? A bare HTTP GET of ``<url><prefix>api``; any status below 500 counts.

Hand-written over asyncio streams rather than an HTTP client library: one small request, no
redirect following, TCP_NODELAY, and no client object to keep. Polled at short intervals (10 ms
growing to 100 ms) so readiness is noticed within a tenth of a second of the server listening:
JupyterHub's exponential backoff adds 1-3 s to every spawn here.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

__all__ = ["http_status"]


async def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status code of ``GET url`` or None if nothing answers (refused, reset, timeout)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
                "Accept: application/json\r\nUser-Agent: amalthea-hub\r\n\r\n".encode()
            )
            line = await reader.readline()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    finally:
        if writer is not None:
            writer.close()
    fields = line.split()
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    return int(fields[1])
