"""Helpers for the redirect-login tests (OIDC, LTI): a tiny hub stand-in and a JWKS server.

The stand-in mounts an authenticator's ``login_handlers()`` under /hub/ in a real Tornado server
and finishes logins the way the hub contract says (``finish_login`` policy), answering JSON so
tests can see the AuthResult.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from amalthea.auth.base import Authenticator, AuthError, AuthResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoginRecorder:
    """A ``complete_login`` like the hub's: apply policy, then report the result as JSON."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        self.results: list[AuthResult] = []

    async def __call__(self, handler: Any, result: AuthResult, next_url: str = "") -> None:
        try:
            result = self.authenticator.finish_login(result)
        except AuthError as e:
            handler.set_status(e.status)
            handler.finish({"error": e.user_message})
            return
        self.results.append(result)
        handler.finish({"result": asdict(result), "next_url": next_url})


@asynccontextmanager
async def serve_hub(authenticator: Authenticator, port: int = 0) -> AsyncIterator[str]:
    """Serve the authenticator's handlers under /hub/; yields the base URL."""
    recorder = LoginRecorder(authenticator)
    authenticator.context.complete_login = recorder
    authenticator.context.hub_prefix = "/hub/"
    routes = [
        ("/hub" + pattern, handler, kwargs)
        for pattern, handler, kwargs in authenticator.login_handlers()
    ]
    app = Application(routes, xsrf_cookies=True, cookie_secret="test")
    sockets = bind_sockets(port, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    actual = sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{actual}"
    finally:
        server.stop()
        await server.close_all_connections()


class _JWKSHandler(RequestHandler):
    def initialize(self, box: dict[str, Any]) -> None:
        self.box = box

    def get(self) -> None:
        self.box["hits"] = self.box.get("hits", 0) + 1
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.box["jwks"]))


@asynccontextmanager
async def serve_jwks(box: dict[str, Any]) -> AsyncIterator[str]:
    """Serve ``box["jwks"]`` (mutable, for key rotation) at /jwks; yields its URL."""
    app = Application([("/jwks", _JWKSHandler, {"box": box})])
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}/jwks"
    finally:
        server.stop()
        await server.close_all_connections()
