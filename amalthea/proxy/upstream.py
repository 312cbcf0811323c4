"""The target side: one protocol per upstream connection, and a keep-alive pool of them.

Response bytes are written to the client exactly as they arrive (head and body, chunked or
not); the response parser runs only to learn the status and where the response ends, so
the proxy never rebuilds or buffers a response. A pooled connection that sends anything
while idle is closed, so stray bytes can never reach the next client.

After a ``101 Switching Protocols`` the connection stops parsing and splices bytes both
ways (see ``ClientConnection.start_splice``).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

import httptools

from .targets import Target

if TYPE_CHECKING:
    from .http import ClientConnection, Exchange

__all__ = ["UpstreamConnection", "UpstreamPool"]

#: idle pooled connections kept per target
MAX_IDLE_PER_TARGET = 128
#: seconds a pooled connection may stay idle (below tornado's and nginx's own limits)
IDLE_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, key: tuple[object, ...]) -> None:
        self.pool = pool
        self.key = key
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.client: ClientConnection | None = None
        self.exchange: Exchange | None = None
        self.reused = False
        self.splicing = False
        self.closed = False
        self.read_paused = False
        self.idle_since = 0.0

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            # Unsolicited bytes on an idle connection: never hand it to anyone again.
            self.transport.close()
            return
        client.transport.write(data)
        if self.splicing:
            client.touch()
            return
        client.last_io = client.ctx.now  # a streaming response is not an idle client
        ex = self.exchange
        assert ex is not None
        ex.response_started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if ex.upgrade and ex.status == 101:
                self.splicing = True
                client.start_splice(self)
            else:
                self._abort()
        except httptools.HttpParserError:
            # The head already went out raw; a broken response can only end both sides.
            self._abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        client, ex = self.client, self.exchange
        self.client = self.exchange = None
        if client is None:
            return
        if self.splicing:
            client.abort()
        elif ex is not None:
            client.upstream_lost(self, ex)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_for_peer()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_for_peer()

    # -- httptools callbacks -----------------------------------------------------------
    def on_headers_complete(self) -> None:
        ex = self.exchange
        assert ex is not None
        ex.status = status = self.parser.get_status_code()
        if ex.is_head and status >= 200:
            # llhttp cannot be told a response has no body; finish by hand and start afresh.
            self.parser = httptools.HttpResponseParser(self)
            self._complete(ex)

    def on_message_complete(self) -> None:
        ex = self.exchange
        if ex is None:  # HEAD response already completed in on_headers_complete
            return
        status = ex.status
        if status < 200:
            # 100 Continue and friends were relayed; the final response follows.
            # 101 is finished by the HttpParserUpgrade raised right after this callback.
            return
        self._complete(ex)

    # -- helpers -----------------------------------------------------------------------
    def pause_reading(self) -> None:
        """The client cannot take more: stop reading the target (backpressure)."""
        if not self.closed and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def attach(self, client: ClientConnection, ex: Exchange) -> None:
        self.client = client
        self.exchange = ex

    def _complete(self, ex: Exchange) -> None:
        client = self.client
        self.client = self.exchange = None
        keep = (
            ex.request_done and not ex.upgrade and not ex.http10 and self.parser.should_keep_alive()
        )
        if keep:
            self.resume_reading()
            self.pool.release(self)
        else:
            self.close()
        if client is not None:
            client.response_complete(ex)

    def _abort(self) -> None:
        client = self.client
        self.client = self.exchange = None
        self.close()
        if client is not None:
            client.abort()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections per target; connection is made on a pool miss."""

    def __init__(self) -> None:
        self._idle: dict[tuple[object, ...], list[UpstreamConnection]] = {}
        self._tls = ssl.create_default_context()
        self.now = 0.0

    def acquire(self, target: Target) -> UpstreamConnection | None:
        conns = self._idle.get(target.key)
        while conns:
            conn = conns.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self, target: Target) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        key = target.key

        def factory() -> UpstreamConnection:
            return UpstreamConnection(self, key)

        if target.unix_path:
            coro = loop.create_unix_connection(factory, target.unix_path)
        else:
            coro = loop.create_connection(
                factory,
                target.host,
                target.port,
                ssl=self._tls if target.tls else None,
                server_hostname=target.host if target.tls else None,
            )
        _, conn = await asyncio.wait_for(coro, CONNECT_TIMEOUT)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        conns = self._idle.setdefault(conn.key, [])
        if len(conns) >= MAX_IDLE_PER_TARGET:
            conn.close()
            return
        conn.idle_since = self.now
        conns.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        conns = self._idle.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than IDLE_TIMEOUT."""
        self.now = now
        for key, conns in list(self._idle.items()):
            keep = []
            for c in conns:
                if now - c.idle_since > IDLE_TIMEOUT:
                    c.close()
                elif not c.closed:
                    keep.append(c)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def idle_count(self) -> int:
        return sum(len(c) for c in self._idle.values())

    def close_all(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
