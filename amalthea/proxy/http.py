"""The client side: one protocol per client connection, parsing requests with httptools.

Life of a request (an :class:`Exchange`):

1. headers complete -> validated (framing, size, path policy), routed, and the request head
   for the target rebuilt by ``forwarding.py`` (hop-by-hop dropped, ``X-Forwarded-*`` added);
2. sent on a pooled target connection at once, or after a connect (client reading paused
   meanwhile, so at most one read of body is held);
3. body chunks are streamed to the target as they are parsed (re-chunked if chunked);
4. the response streams back untouched (see ``upstream.py``); when it ends the connection
   serves the next request, or closes.

Backpressure: a full write buffer on one side pauses reading on the other side, in both
directions, for bodies and for spliced upgrades alike.

Pipelined requests are queued (parsed, bodies held) and the client's reading is paused
until the current response is done, which bounds what is held to one read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from typing import Any

import httptools

from .context import ProxyContext
from .errors import error_page, fetch_error_target, simple_response
from .forwarding import HOP_BY_HOP, XFWD, request_head
from .routes import BadPath, Route, request_segments
from .upstream import UpstreamConnection

__all__ = ["ClientConnection", "Exchange"]

log = logging.getLogger("amalthea.proxy")
access_log = logging.getLogger("amalthea.proxy.access")

_PAUSE_CONNECT = 1
_PAUSE_QUEUE = 2
_PAUSE_PEER = 4
_PAUSE_UPGRADE = 8

_HEALTH_BODY = b'{"status": "OK"}'
# Ours also says which process answered (useful with --workers).
_OWN_HEALTH_BODY = json.dumps({"status": "OK", "pid": os.getpid()}).encode()


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


class Exchange:
    """One request and its response, from the client's point of view."""

    __slots__ = (
        "chunked",
        "cl_count",
        "conn_tokens",
        "deferred",
        "discard_body",
        "head",
        "headers",
        "host",
        "http10",
        "is_head",
        "keep_alive",
        "method",
        "pending",
        "request_done",
        "response_started",
        "retried",
        "route",
        "sent_at",
        "started",
        "status",
        "te",
        "upgrade",
        "upgrade_value",
        "upstream",
        "url",
        "xfwd",
    )

    def __init__(self, now: float) -> None:
        self.url = b""
        self.method = b""
        self.headers: list[bytes] = []
        self.host = b""
        self.xfwd: dict[bytes, bytes] | None = None
        self.cl_count = 0
        self.te: bytes | None = None
        self.conn_tokens: bytes = b""
        self.upgrade_value = b""
        self.chunked = False
        self.upgrade = False
        self.http10 = False
        self.is_head = False
        self.keep_alive = True
        self.pending: list[bytes] = []
        self.request_done = False
        self.discard_body = False
        self.deferred: bytes | None = None
        self.response_started = False
        self.retried = False
        self.route: Route | None = None
        self.upstream: UpstreamConnection | None = None
        self.head = b""
        self.status = 0
        self.started = now
        self.sent_at = now


class ClientConnection(asyncio.Protocol):
    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.cur: Exchange | None = None
        self.active: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.splice: UpstreamConnection | None = None
        self.splice_route: Route | None = None
        self.task: asyncio.Task[None] | None = None
        self.paused = 0
        self.head_size = 0
        self.closed = False
        self.rejected = False
        self.last_io = ctx.now
        self.client_ip = b""

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        ctx = self.ctx
        if len(ctx.connections) >= ctx.config.max_connections:
            # Bounded: answer and drop instead of holding state for this connection.
            self.rejected = True
            ctx.stats.rejected_connections += 1
            transport.write(simple_response(503, b"too many connections\n", close=True))
            transport.close()
            return
        ctx.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client_ip = peer[0].encode()

    def data_received(self, data: bytes) -> None:
        self.last_io = self.ctx.now
        if self.splice is not None:
            self.splice.transport.write(data)
            route = self.splice_route
            if route is not None:
                route.last_activity = self.ctx.now
            return
        if self.rejected or self.closed:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            rest = data[e.args[0] :]
            ex = self.cur
            if ex is not None and rest:
                ex.pending.append(rest)
            self._pause(_PAUSE_UPGRADE)
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__ or e.__cause__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.detail)
            else:
                log.exception("internal error while parsing a request")
                self._reject(500, "internal error")
        except httptools.HttpParserError as e:
            self._reject(400, f"malformed request: {e}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        if self.task is not None:
            self.task.cancel()
        if self.splice is not None:
            self.splice.close()
        ex = self.active
        if ex is not None and ex.upstream is not None and ex.upstream.client is self:
            # The response is not finished; the target connection cannot be reused.
            ex.upstream.client = None
            ex.upstream.close()

    def pause_writing(self) -> None:
        up = self.splice or (self.active.upstream if self.active else None)
        if up is not None:
            up.pause_reading()

    def resume_writing(self) -> None:
        up = self.splice or (self.active.upstream if self.active else None)
        if up is not None:
            up.resume_reading()

    # -- httptools callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        self.cur = Exchange(self.ctx.now)
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        ex = self.cur
        assert ex is not None
        ex.url += url
        self.head_size += len(url)
        if self.head_size > self.ctx.config.max_header_size:
            raise _Reject(431, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.cur
        assert ex is not None
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.ctx.config.max_header_size:
            raise _Reject(431, "request headers too large")
        lname = name.lower()
        if lname == b"host":
            ex.host = value
            return
        if lname in HOP_BY_HOP:
            if lname == b"transfer-encoding":
                if ex.te is not None:
                    raise _Reject(400, "repeated Transfer-Encoding")
                ex.te = value
            elif lname == b"connection":
                ex.conn_tokens += b"," + value.lower()
            elif lname == b"upgrade":
                ex.upgrade_value = value
            return
        elif lname == b"content-length":
            ex.cl_count += 1
        elif lname in XFWD:
            if ex.xfwd is None:
                ex.xfwd = {}
            old = ex.xfwd.get(lname)
            ex.xfwd[lname] = old + b"," + value if old else value
            return
        ex.headers += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        ex = self.cur
        assert ex is not None
        p = self.parser
        ex.method = p.get_method()
        ex.is_head = ex.method == b"HEAD"
        ex.http10 = p.get_http_version() == "1.0"
        ex.keep_alive = p.should_keep_alive()
        ex.upgrade = p.should_upgrade()
        if ex.cl_count > 1:
            raise _Reject(400, "duplicate Content-Length")
        if ex.te is not None:
            if ex.te.strip().lower() != b"chunked":
                raise _Reject(400, "only 'Transfer-Encoding: chunked' is accepted")
            ex.chunked = True
        if not ex.url.startswith(b"/"):
            raise _Reject(400, "request target must be an absolute path")
        if self.active is None:
            self._start(ex)
        else:
            self.queue.append(ex)
            self._pause(_PAUSE_QUEUE)

    def on_body(self, body: bytes) -> None:
        ex = self.cur
        assert ex is not None
        if ex.discard_body:
            return
        if ex.chunked:
            body = b"%x\r\n%b\r\n" % (len(body), body)
        up = ex.upstream
        if up is not None and ex is self.active:
            up.transport.write(body)
            # --proxy-timeout counts from the last byte sent, so long uploads are fine
            ex.sent_at = now = self.ctx.now
            if ex.route is not None:
                ex.route.last_activity = now
        else:
            ex.pending.append(body)

    def on_message_complete(self) -> None:
        ex = self.cur
        assert ex is not None
        ex.request_done = True
        if ex.chunked and not ex.discard_body:
            if ex.upstream is not None and ex is self.active:
                ex.upstream.transport.write(b"0\r\n\r\n")
            else:
                ex.pending.append(b"0\r\n\r\n")
        if ex.deferred is not None and ex is self.active:
            self._send_local(ex, ex.deferred)

    # -- request handling --------------------------------------------------------------
    def _start(self, ex: Exchange) -> None:
        self.active = ex
        ctx = self.ctx
        # the coarse clock is fine for timeouts; the access log wants real durations
        ex.started = time.time() if ctx.config.access_log else ctx.now
        path = ex.url.split(b"?", 1)[0]
        if path == b"/_chp_healthz" or path == b"/_amalthea/health":
            body = _HEALTH_BODY if path == b"/_chp_healthz" else _OWN_HEALTH_BODY
            return self._local(
                ex, simple_response(200, body, b"application/json", head_only=ex.is_head)
            )
        try:
            segments = request_segments(path)
        except BadPath:
            ctx.stats.bad_requests += 1
            ex.keep_alive = False
            return self._local(
                ex,
                simple_response(
                    400,
                    error_page(400, "dot segments are not allowed in paths"),
                    b"text/html; charset=utf-8",
                    close=True,
                ),
            )
        if ctx.config.host_routing and ex.host:
            segments.insert(0, ex.host.rsplit(b":", 1)[0].decode("latin-1").lower())
        route = ctx.table.find(segments)
        if route is None:
            return self._error(ex, 404)
        ex.route = route
        if ex.upgrade:
            ctx.stats.requests_ws += 1
        else:
            ctx.stats.requests_web += 1
        ex.head = request_head(ex, route, self.client_ip, self.ctx.port_bytes, self.ctx.proto_bytes)
        self._dispatch(ex)

    def _dispatch(self, ex: Exchange) -> None:
        assert ex.route is not None
        up = self.ctx.pool.acquire(ex.route.target)
        if up is not None:
            self._send_head(ex, up)
        else:
            self._pause(_PAUSE_CONNECT)
            self.task = asyncio.get_running_loop().create_task(self._connect(ex))

    async def _connect(self, ex: Exchange) -> None:
        assert ex.route is not None
        try:
            up = await self.ctx.pool.connect(ex.route.target)
        except (OSError, TimeoutError) as e:
            log.info("target %s for %s unreachable: %s", ex.route.target.url, ex.route.prefix, e)
            self.task = None
            self._upstream_failed(ex, 503)
            return
        self.task = None
        if self.closed or ex is not self.active:
            up.close()
            return
        self._send_head(ex, up)
        self._resume(_PAUSE_CONNECT)

    def _send_head(self, ex: Exchange, up: UpstreamConnection) -> None:
        ex.upstream = up
        ex.sent_at = self.ctx.now
        up.attach(self, ex)
        if ex.pending:
            up.transport.write(ex.head + b"".join(ex.pending))
            ex.pending = []
        else:
            up.transport.write(ex.head)

    # -- answers the proxy makes itself ------------------------------------------------
    def _local(self, ex: Exchange, response: bytes) -> None:
        """Answer ``ex`` ourselves once its request has been read (body discarded)."""
        ex.discard_body = True
        ex.pending = []
        if ex.request_done:
            self._send_local(ex, response)
        else:
            ex.deferred = response

    def _send_local(self, ex: Exchange, response: bytes) -> None:
        ex.deferred = None
        if ex.upgrade:
            ex.keep_alive = False
        self.transport.write(response)
        ex.status = int(response[9:12])
        self.response_complete(ex)

    def _error(self, ex: Exchange, status: int) -> None:
        ex.discard_body = True
        if ex.upgrade:
            # As CHP: an upgrade request gets a bare status line and the connection closes.
            ex.keep_alive = False
            return self._local(
                ex,
                b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
                % (status, b"Not Found" if status == 404 else b"Error"),
            )
        target = self.ctx.config.error_target
        if target:
            self.task = asyncio.get_running_loop().create_task(
                self._error_from_target(ex, status, target)
            )
            return None
        return self._local(
            ex,
            simple_response(
                status, error_page(status), b"text/html; charset=utf-8", head_only=ex.is_head
            ),
        )

    async def _error_from_target(self, ex: Exchange, status: int, target: str) -> None:
        try:
            ctype, body = await fetch_error_target(target, status, ex.url)
        except (OSError, TimeoutError) as e:
            log.warning("error target %s failed: %s", target, e)
            ctype, body = b"text/html; charset=utf-8", error_page(status)
        self.task = None
        if not self.closed and ex is self.active:
            self._local(ex, simple_response(status, body, ctype, head_only=ex.is_head))

    def _upstream_failed(self, ex: Exchange, status: int) -> None:
        self.ctx.stats.upstream_errors += 1
        ex.upstream = None
        if ex.response_started or self.closed:
            self.abort()
        else:
            self._resume(_PAUSE_CONNECT)
            self._error(ex, status)

    def _reject(self, status: int, detail: str) -> None:
        """Malformed input: answer (unless mid-response) and close the connection."""
        self.ctx.stats.bad_requests += 1
        log.debug("rejecting request from %s: %s", self.client_ip, detail)
        if self.active is None or not self.active.response_started:
            body = error_page(status, detail)
            self.transport.write(
                simple_response(status, body, b"text/html; charset=utf-8", close=True)
            )
        self.abort()

    # -- called by the target side -----------------------------------------------------
    def response_complete(self, ex: Exchange) -> None:
        ctx = self.ctx
        ctx.stats.status[ex.status] += 1
        if ex.route is not None and ex.status < 300:
            ex.route.last_activity = ctx.now
        if ctx.config.access_log:
            self._log_access(ex)
        self.active = None
        self.last_io = ctx.now
        self._resume(_PAUSE_PEER)
        if self.closed:
            return
        if not (ex.keep_alive and ex.request_done) or ex.upgrade:
            self.transport.close()
            self.closed = True
            return
        if self.queue:
            nxt = self.queue.popleft()
            if not self.queue:
                self._resume(_PAUSE_QUEUE)
            self._start(nxt)

    def upstream_lost(self, up: UpstreamConnection, ex: Exchange) -> None:
        """The target closed before finishing its response."""
        if ex is not self.active or self.closed:
            return
        if not ex.response_started:
            replayable = ex.request_done and not ex.chunked and not ex.upgrade and ex.cl_count == 0
            if up.reused and not ex.retried and replayable:
                # A pooled connection the target had just closed: safe to try once more.
                ex.retried = True
                self._dispatch(ex)
                return
            self._upstream_failed(ex, 503)
            return
        # Close-delimited body ended, or the target died mid-body: either way the
        # client learns where the response ends from our EOF.
        self.ctx.stats.status[ex.status] += 1
        self.active = None
        self.abort()

    def start_splice(self, up: UpstreamConnection) -> None:
        """After a 101: from now on bytes flow both ways unparsed."""
        ex = self.active
        self.splice = up
        self.active = None
        if ex is not None:
            self.splice_route = ex.route
            self.ctx.stats.status[101] += 1
            if ex.pending:
                up.transport.write(b"".join(ex.pending))
                ex.pending = []
        self.paused = 0
        self.transport.resume_reading()

    def touch(self) -> None:
        """Traffic on a spliced connection: mark its route active (one attribute store)."""
        ctx = self.ctx
        self.last_io = ctx.now
        route = self.splice_route
        if route is not None:
            route.last_activity = ctx.now

    def pause_for_peer(self) -> None:
        self._pause(_PAUSE_PEER)

    def resume_for_peer(self) -> None:
        self._resume(_PAUSE_PEER)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()
        ex = self.active
        if ex is not None and ex.upstream is not None and ex.upstream.client is self:
            ex.upstream.client = None
            ex.upstream.close()

    # -- internals ---------------------------------------------------------------------
    def _pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def _log_access(self, ex: Exchange) -> None:
        access_log.info(
            json.dumps(
                {
                    "ts": round(time.time(), 3),
                    "client": self.client_ip.decode(),
                    "method": ex.method.decode("latin-1"),
                    "url": ex.url.decode("latin-1"),
                    "status": ex.status,
                    "route": ex.route.prefix if ex.route else None,
                    "ms": round((time.time() - ex.started) * 1000, 1),
                }
            )
        )
