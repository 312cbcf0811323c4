"""A tiny stand-in for the hub's REST API, run in a thread, for fast single-user tests.

It implements just what a single-user server calls (API root, /user, users/<name>,
activity, OAuth authorize + token with PKCE S256) and records what it received. The real
JupyterHub is exercised by test_jupyterhub_e2e.py; this one makes failures cheap to provoke.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tornado import httpserver, netutil, web

#: A user API token for alice that only reaches her default server: register it with
#: ``fake_hub.state.tokens[ALICE_TOKEN] = ALICE`` and send ``ALICE_AUTH``.
ALICE_TOKEN = "alice-token"
ALICE_AUTH = {"Authorization": f"token {ALICE_TOKEN}"}
ALICE: dict[str, Any] = {
    "name": "alice",
    "kind": "user",
    "groups": [],
    "admin": False,
    "scopes": ["access:servers!server=alice/"],
}


@dataclass
class FakeHubState:
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> user model
    groups: dict[str, list[str]] = field(default_factory=dict)  # user -> groups
    browser_user: dict[str, Any] | None = None  # who is "logged in" at authorize time
    codes: dict[str, tuple[dict[str, Any], str, str]] = field(default_factory=dict)
    activity: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    server_token: str = field(default_factory=lambda: secrets.token_hex(16))


class _Base(web.RequestHandler):
    def initialize(self, state: FakeHubState) -> None:
        self.state = state

    def set_default_headers(self) -> None:
        self.set_header("X-JupyterHub-Version", "6.1.1")

    def token(self) -> str:
        header = self.request.headers.get("Authorization", "")
        return header.split(None, 1)[1] if " " in header else ""


class Root(_Base):
    def get(self) -> None:
        self.write({"version": "6.1.1"})


class Whoami(_Base):
    def get(self) -> None:
        model = self.state.tokens.get(self.token())
        if model is None:
            raise web.HTTPError(403)
        self.write(model)


class UserModel(_Base):
    def get(self, name: str) -> None:
        if self.token() != self.state.server_token:
            raise web.HTTPError(403)
        self.write({"name": name, "groups": self.state.groups.get(name, [])})


class Activity(_Base):
    def post(self, name: str) -> None:
        if self.token() != self.state.server_token:
            raise web.HTTPError(403)
        self.state.activity.append({"user": name, **json.loads(self.request.body)})


class Report(_Base):
    def post(self) -> None:
        if self.token() != self.state.server_token:
            raise web.HTTPError(403)
        self.state.reports.append(json.loads(self.request.body))


class Authorize(_Base):
    def get(self) -> None:
        args = {k: self.get_argument(k) for k in self.request.arguments}
        self.state.authorize_requests.append(args)
        if self.state.browser_user is None:
            raise web.HTTPError(403)
        code = secrets.token_urlsafe(20)
        self.state.codes[code] = (
            self.state.browser_user,
            args["code_challenge"],
            args["redirect_uri"],
        )
        self.redirect(
            args["redirect_uri"] + "?" + urlencode({"code": code, "state": args["state"]})
        )


class Token(_Base):
    def post(self) -> None:
        form = {k: self.get_body_argument(k) for k in self.request.body_arguments}
        self.state.token_requests.append(form)
        if form.get("client_secret") != self.state.server_token:
            self.set_status(401)
            self.write({"error": "invalid_client"})
            return
        entry = self.state.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        if entry is None or digest.decode() != entry[1] or form.get("redirect_uri") != entry[2]:
            self.set_status(400)
            self.write({"error": "invalid_grant"})
            return
        token = secrets.token_hex(15)
        self.state.tokens[token] = entry[0]
        self.write({"access_token": token, "token_type": "Bearer", "expires_in": 1209600})


class FakeHub:
    """Run the fake hub on 127.0.0.1:<ephemeral> in a background thread."""

    def __init__(self) -> None:
        self.state = FakeHubState()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        kw = {"state": self.state}
        app = web.Application(
            [
                (r"/hub/api/?", Root, kw),
                (r"/hub/api/user", Whoami, kw),
                (r"/hub/api/users/([^/]+)", UserModel, kw),
                (r"/hub/api/users/([^/]+)/activity", Activity, kw),
                (r"/hub/api/oauth2/authorize", Authorize, kw),
                (r"/hub/api/oauth2/token", Token, kw),
                (r"/report", Report, kw),
            ]
        )
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server = httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        server.stop()

    def start(self) -> FakeHub:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
