"""Start, stop and watch servers: ``/hub/api/users/NAME/server[s/SERVER][/progress]`` (§5.4, §7).

POST answers 201 when the server is ready within ``slow_spawn_timeout`` (10 s), else 202;
DELETE answers 204 when stopped within ``slow_stop_timeout``, else 202. A failed spawn answers
500 with the failure message (as JupyterHub does); the progress stream and the server's record
keep the reason and the log tail.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from sqlalchemy import delete
from tornado import web
from tornado.iostream import StreamClosedError

from amalthea.hub.lifecycle import ServerState, SpawnRefused
from amalthea.hub.store import queries
from amalthea.hub.store.models import Server, User
from amalthea.hub.web.base import APIHandler

SERVER_NAME = re.compile(r"^[a-z](?:[a-z0-9]*(?:-[a-z0-9]+)*)?$")
KEEPALIVE = 8.0


def valid_server_name(name: str) -> bool:
    return 0 < len(name) <= 30 and SERVER_NAME.match(name) is not None


class _ServerBase(APIHandler):
    async def _user(self, name: str) -> User:
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
        if user is None:
            raise web.HTTPError(404, reason=f"No such user: {name}")
        return user

    def _check_named(self, server: str) -> None:
        if server and not self.hub.settings.allow_named_servers:
            raise web.HTTPError(400, reason="Named servers are not enabled.")

    def label(self, name: str, server: str) -> str:
        return f"{name}/{server}" if server else name


class ServerHandler(_ServerBase):
    async def post(self, name: str, server: str = "") -> None:
        server = server or ""
        self.need(("start:servers", "servers"), server=f"{name}/{server}")
        self._check_named(server)
        body = self.get_json_body()
        if body is not None and not isinstance(body, dict):
            raise web.HTTPError(400, reason="The body must be a JSON object")
        options = _user_options(body)
        user = await self._user(name)
        manager = self.hub.servers
        existing = manager.get(name, server)
        if server and existing is None and not await self._exists(user, server):
            if not valid_server_name(server):
                raise web.HTTPError(400, reason=f"Invalid server_name: {server!r}")
            await self._check_limit(user)
        try:
            rt = await manager.spawn(user, server, options)
        except SpawnRefused as e:
            if e.retry_after:
                self.set_header("Retry-After", str(e.retry_after))
            raise web.HTTPError(e.status, reason=e.message) from None
        done = await manager.wait(rt, manager.slow_spawn_timeout)
        self.set_header("Content-Type", "text/plain")
        if not done or rt.state is ServerState.PENDING:
            self.set_status(202)
        elif rt.state is ServerState.RUNNING:
            self.set_status(201)
        else:
            failure = rt.failure or {}
            raise web.HTTPError(
                500, reason=f"Spawn failed: {failure.get('message', 'unknown error')}"
            )
        self.finish()

    async def _exists(self, user: User, server: str) -> bool:
        return any(s.name == server for s in user.servers)

    async def _check_limit(self, user: User) -> None:
        limit = self.hub.settings.named_server_limit_per_user
        if limit and sum(1 for s in user.servers if s.name) >= limit:
            raise web.HTTPError(
                400, reason=f"User {user.name} already has the maximum of {limit} named servers."
            )

    async def delete(self, name: str, server: str = "") -> None:
        server = server or ""
        self.need(("delete:servers", "servers"), server=f"{name}/{server}")
        self._check_named(server)
        body = self.get_json_body() or {}
        remove = bool(body.get("remove")) if isinstance(body, dict) else False
        if remove and not server:
            raise web.HTTPError(400, reason="Cannot delete the default server")
        user = await self._user(name)
        if server and not await self._exists(user, server):
            raise web.HTTPError(404, reason=f"{name} has no server named {server!r}")
        manager = self.hub.servers
        rt = await manager.stop(name, server)
        done = rt is None or await manager.wait(rt, manager.slow_stop_timeout)
        self.set_header("Content-Type", "text/plain")
        if not done:
            if remove:
                asyncio.get_running_loop().create_task(self._remove_later(rt, user.id, server))
            self.set_status(202)
            self.finish()
            return
        if remove:
            await self._remove(user.id, server)
        self.set_status(204)
        self.finish()

    async def _remove_later(self, rt: Any, user_id: int, server: str) -> None:
        await self.hub.servers.wait(rt, 300)
        await self._remove(user_id, server)

    async def _remove(self, user_id: int, server: str) -> None:
        async with self.hub.db.session() as s:
            await s.execute(delete(Server).where(Server.user_id == user_id, Server.name == server))
            await s.commit()
        user = self.hub.servers.runtimes.get((self.path_args[0], server))
        if user is not None and not user.state.active:
            self.hub.servers.runtimes.pop((self.path_args[0], server), None)


class ProgressHandler(_ServerBase):
    async def get(self, name: str, server: str = "") -> None:
        server = server or ""
        self.need(("read:servers", "servers"), server=f"{name}/{server}")
        user = await self._user(name)
        rt = self.hub.servers.get(name, server)
        if server and rt is None and not any(s.name == server for s in user.servers):
            raise web.HTTPError(404, reason=f"{name} has no server named {server!r}")
        label = self.label(name, server)
        state = rt.state if rt is not None else ServerState.STOPPED
        if rt is None or state in (ServerState.STOPPED, ServerState.STOPPING):
            raise web.HTTPError(400, reason=f"{label} is not starting...")
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        if state is ServerState.RUNNING:
            await self._send({"progress": 100, "ready": True, "url": rt.prefix,
                              "message": f"Server ready at {rt.prefix}"})  # fmt: skip
            return
        try:
            self.write("\n\n")
            await self.flush()
            i = 0
            while True:
                while i < len(rt.events):
                    ev = rt.events[i]
                    i += 1
                    await self._send(ev, finish=False)
                    if ev.get("ready") or ev.get("failed"):
                        self.finish()
                        return
                if rt.state is not ServerState.PENDING:
                    break
                changed = rt.changed
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE)
                except TimeoutError:
                    self.write("\n\n")
                    await self.flush()
        except StreamClosedError:
            return
        self.finish()

    async def _send(self, event: dict[str, Any], finish: bool = True) -> None:
        self.write(f"data: {json.dumps(event)}\n\n")
        await self.flush()
        if finish:
            self.finish()


def _user_options(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """6.0 body ``{"user_options": {...}, "display_name": ...}``; older clients send the options
    as the whole body. None = reuse the last options."""
    if not body:
        return None
    if "user_options" in body or "display_name" in body:
        opts = body.get("user_options")
        if opts is not None and not isinstance(opts, dict):
            raise web.HTTPError(400, reason="user_options must be an object")
        return opts
    return body


handlers = [
    (r"/users/([^/]+)/server", ServerHandler),
    (r"/users/([^/]+)/server/progress", ProgressHandler),
    (r"/users/([^/]+)/servers/([^/]*)", ServerHandler),
    (r"/users/([^/]+)/servers/([^/]*)/progress", ProgressHandler),
]
