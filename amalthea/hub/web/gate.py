"""The hub's HTTP server before the hub is ready: answer early or hold, never drop.

Why: a restart is mostly imports and building (SQLAlchemy, the models, every handler; issue 3).
The port is bound as soon as config is valid, with a :class:`Gate` as the server's request
handler. Until :meth:`Gate.open` hands it the full Tornado application, each request is either

- answered by the early API (``web/early_api.py``: the API version and user models, exactly as
  the full hub would answer them), or
- held: start line, headers and body are buffered, and the request is replayed into the full
  application (``start_request`` / ``headers_received`` / ``data_received`` / ``finish``) the
  moment it is ready, in arrival order. Tornado reads nothing more from a connection until its
  current request is answered, so a held request also holds the ones behind it on that
  connection, as a slow handler would.

If the start fails, :meth:`Gate.fail` answers every held request (and any later one) with a 503
that says so; the process then exits as before. After :meth:`Gate.open` the server calls the
application directly (``app.py`` swaps its ``request_callback``), so a started hub pays nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable

import tornado
from tornado import httputil

from amalthea import JUPYTERHUB_COMPAT_VERSION
from amalthea.hub.web.early_api import Answer, EarlyAPI

__all__ = ["Gate"]

log = logging.getLogger("amalthea.access")
_random = random.Random()


class Gate(httputil.HTTPServerConnectionDelegate):
    def __init__(self, early: EarlyAPI | None, hub_prefix: str) -> None:
        self.early = early
        self.hub_prefix = hub_prefix
        self.target: httputil.HTTPServerConnectionDelegate | None = None
        self.failure: str | None = None
        self._held: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- server side ----------------------------------------------------------------------
    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        if self.target is not None:
            return self.target.start_request(server_conn, request_conn)
        return _Pending(self, server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        if self.target is not None:
            self.target.on_close(server_conn)

    # ---- hub side -------------------------------------------------------------------------
    def open(self, target: httputil.HTTPServerConnectionDelegate) -> None:
        """The full hub is ready: held requests go to ``target``, in arrival order."""
        self.target = target
        if self.early is not None:
            self.early.close()
        held, self._held = self._held, []
        for pending in held:
            self.spawn(pending.attach())

    def fail(self, message: str) -> None:
        """The start failed: held and later requests are answered 503 with ``message``."""
        self.failure = message
        held, self._held = self._held, []
        for pending in held:
            pending.unavailable()

    def hold(self, pending: _Pending) -> None:
        self._held.append(pending)

    def drop(self, pending: _Pending) -> None:
        if pending in self._held:
            self._held.remove(pending)

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("handing a held request to the hub failed", exc_info=task.exception())

    def headers_for(self, answer: Answer) -> httputil.HTTPHeaders:
        """The full hub's API response headers (web/base.py APIHandler, Tornado's defaults)."""
        headers = httputil.HTTPHeaders({
            "Server": f"TornadoServer/{tornado.version}",
            "Content-Type": "application/json",
            "Date": httputil.format_timestamp(time.time()),
            "X-JupyterHub-Version": JUPYTERHUB_COMPAT_VERSION,
            "X-Request-Id": f"{_random.getrandbits(48):012x}",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Content-Security-Policy": f"frame-ancestors 'none'; report-uri "
            f"{self.hub_prefix}security/csp-report; default-src 'none'",
            "Access-Control-Allow-Headers": "accept, content-type, authorization",
        })  # fmt: skip
        headers.update(answer.headers)
        if answer.status == 200:  # Tornado's default Etag for a GET
            headers["Etag"] = f'"{hashlib.sha1(answer.body).hexdigest()}"'  # noqa: S324
        headers["Content-Length"] = str(len(answer.body))
        return headers


class _Pending(httputil.HTTPMessageDelegate):
    """One request that arrived before the hub was ready."""

    def __init__(
        self, gate: Gate, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> None:
        self.gate, self.server_conn, self.request_conn = gate, server_conn, request_conn
        self.start_line: httputil.RequestStartLine | None = None
        self.headers = httputil.HTTPHeaders()
        self.chunks: list[bytes] = []
        self.complete = False
        self.closed = False
        self.inner: httputil.HTTPMessageDelegate | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.start_line, self.headers = start_line, headers
        return self.attach() if self.gate.target is not None else None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.inner is not None:
            return self.inner.data_received(chunk)
        self.chunks.append(chunk)
        return self.attach() if self.gate.target is not None else None

    def finish(self) -> None:
        if self.inner is not None:
            self.inner.finish()
            return
        self.complete = True
        gate = self.gate
        if gate.target is not None:
            gate.spawn(self.attach())
        elif gate.failure is not None:
            self.unavailable()
        else:
            assert self.start_line is not None
            line = self.start_line
            answer = None if gate.early is None else gate.early.answer(line.method, line.path, self.headers)  # fmt: skip
            if answer is None:
                gate.hold(self)
            else:
                self.respond(answer)

    def on_connection_close(self) -> None:
        if self.inner is not None:
            self.inner.on_connection_close()
            return
        self.closed = True
        if not self.complete:  # half a request: nothing to hand over
            self.gate.drop(self)

    async def attach(self) -> None:
        """Replay what arrived so far into the full application; forward the rest."""
        assert self.gate.target is not None and self.start_line is not None
        inner = self.gate.target.start_request(self.server_conn, self.request_conn)
        waiting = inner.headers_received(self.start_line, self.headers)
        if waiting is not None:
            await waiting
        chunks, self.chunks = self.chunks, []
        for chunk in chunks:
            waiting = inner.data_received(chunk)
            if waiting is not None:
                await waiting
        self.inner = inner
        if self.complete:
            inner.finish()
        if self.closed:
            inner.on_connection_close()

    def unavailable(self) -> None:
        message = f"The hub failed to start: {self.gate.failure}"
        body = json.dumps({"status": 503, "message": message}).encode()
        self.respond(Answer(503, "Service Unavailable", body))

    def respond(self, answer: Answer) -> None:
        if self.closed:
            return
        conn = self.request_conn
        line = httputil.ResponseStartLine("HTTP/1.1", answer.status, answer.reason)
        written = conn.write_headers(line, self.gate.headers_for(answer), answer.body)
        # a client that went away is no error: retrieve the exception so nothing logs it
        written.add_done_callback(lambda f: f.cancelled() or f.exception())
        conn.finish()
        if log.isEnabledFor(logging.DEBUG):
            assert self.start_line is not None
            log.debug("%d %s %s (early)", answer.status, self.start_line.method,
                      self.start_line.path.partition("?")[0])  # fmt: skip
