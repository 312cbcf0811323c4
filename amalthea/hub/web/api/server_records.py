"""GET/PUT/PATCH of server records (JupyterHub 6.0, protocol §5.4).

Starting and stopping (POST/DELETE) stay in ``servers.py``; this module extends that handler
with reading a server model, creating a named server without starting it (PUT) and editing a
stopped one (PATCH: rename, display name, user options). Registered with a lower ``priority``
number so its routes are matched first and the start/stop methods are inherited unchanged.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import select

from amalthea.hub import rbac
from amalthea.hub.lifecycle.admission import NO_WAIT
from amalthea.hub.store.models import Server, User
from amalthea.hub.web.api import servers as start_stop
from amalthea.hub.web.api._support import RestHandler, bad
from amalthea.hub.web.api.views import ServerInfo, server_model

MAX_DISPLAY = 255


def check_display_name(value: Any) -> str:
    if not isinstance(value, str):
        raise bad("display_name must be a string")
    value = unicodedata.normalize("NFC", value)
    if not 1 <= len(value) <= MAX_DISPLAY or not value.isprintable():
        raise bad(f"display_name must be 1-{MAX_DISPLAY} printable characters")
    if value != value.strip() or "  " in value:
        raise bad("display_name must not have leading, trailing or double spaces")
    return str(value)


class ServerRecordHandler(start_stop.ServerHandler, RestHandler):
    async def _row(self, name: str, server: str) -> tuple[Any, Server | None]:
        user = await self._user(name)
        async with self.hub.db.session() as s:
            row = (await s.execute(
                select(Server).where(Server.user_id == user.id, Server.name == server))).scalar()  # fmt: skip
        return user, row

    def _model(self, name: str, row: Server) -> dict[str, Any]:
        rt = self.hub.servers.get(name, row.name)
        state = rt.state.value if rt is not None else row.state
        info = ServerInfo(row.name, row.display_name, state, row.started, row.last_activity,
                          row.user_options, row.spawner_state)  # fmt: skip
        with_state = rbac.covers(self.held, "admin:server_state", server=f"{name}/{row.name}")
        return server_model(self.urls, name, info, with_state)

    async def post(self, name: str, server: str = "") -> None:
        """Start (``servers.py``); ``Prefer: wait=0`` asks for 429 instead of the spawn queue."""
        prefer = self.request.headers.get("Prefer", "").replace(" ", "").lower()
        token = NO_WAIT.set("wait=0" in prefer.split(","))
        try:
            await super().post(name, server)
        finally:
            NO_WAIT.reset(token)

    async def get(self, name: str, server: str = "") -> None:
        server = server or ""
        await self.need_any(["read:servers"], server=f"{name}/{server}")
        self._check_named(server)
        _, row = await self._row(name, server)
        if row is None:
            raise bad(f"{name} has no server named {server!r}", 404)
        self.write_json(self._model(name, row))

    async def put(self, name: str, server: str = "") -> None:
        server = server or ""
        await self.need_any(["start:servers"], server=f"{name}/{server}")
        if not server:
            raise bad("The default server always exists; PUT creates named servers", 409)
        self._check_named(server)
        body = self.body_object({"display_name", "user_options"})
        display = check_display_name(body["display_name"]) if "display_name" in body else server
        options = body.get("user_options")
        if options is not None and not isinstance(options, dict):
            raise bad("user_options must be an object")
        user, row = await self._row(name, server)
        if row is not None:
            raise bad(f"{name} already has a server named {server!r}", 409)
        if not start_stop.valid_server_name(server):
            raise bad(f"Invalid server_name: {server!r}")
        await self._check_limit(user)
        async with self.hub.db.session() as s:
            row = Server(user_id=user.id, name=server, display_name=display, state="stopped",
                         user_options=options)  # fmt: skip
            s.add(row)
            await s.commit()
        self.write_json(self._model(name, row), 201)

    async def patch(self, name: str, server: str = "") -> None:
        server = server or ""
        await self.need_any(["start:servers"], server=f"{name}/{server}")
        self._check_named(server)
        body = self.body_object({"name", "display_name", "user_options"}, required=True,
                                empty_ok=False)  # fmt: skip
        user, row = await self._row(name, server)
        if row is None:
            raise bad(f"{name} has no server named {server!r}", 404)
        if self.hub.servers.state_of(name, server).active:
            raise bad(f"Server {name}/{server} is active; stop it before editing")
        new_name = body.get("name", server)
        if not isinstance(new_name, str):
            raise bad("name must be a string")
        if new_name != server:
            if not server:
                raise bad("The default server cannot be renamed")
            if not start_stop.valid_server_name(new_name):
                raise bad(f"Invalid server_name: {new_name!r}")
            if any(x.name == new_name for x in user.servers):
                raise bad(f"{name} already has a server named {new_name!r}", 409)
        display = check_display_name(body["display_name"]) if "display_name" in body else None
        options = body.get("user_options")
        if "user_options" in body and not isinstance(options, dict):
            raise bad("user_options must be an object")
        async with self.hub.db.session() as s:
            row = await s.get(Server, row.id)
            assert row is not None
            if new_name != server:
                self.hub.servers.runtimes.pop((name, server), None)
                row.name = new_name
            if display is not None:
                row.display_name = display
            if "user_options" in body:
                row.user_options = options
            await s.commit()
        self.write_json(self._model(name, row))


class ServerLogsHandler(RestHandler):
    """Amalthea extension for the admin panel: the last lines a server printed."""

    async def get(self, name: str, server: str = "") -> None:
        await self.need_any(["admin:servers"], server=f"{name}/{server}")
        rt = self.hub.servers.get(name, server)
        if rt is None:
            async with self.hub.db.session() as s:
                found = (await s.execute(
                    select(Server.id).join(User, User.id == Server.user_id)
                    .where(User.name == name, Server.name == server))).scalar()  # fmt: skip
            if found is None:
                raise bad(f"No server {name[:80]}/{server[:40]}", 404)
        lines: list[str] = []
        if rt is not None and rt.spawner is not None:
            try:
                lines = list(await rt.spawner.logs(200))
            except Exception as e:  # a spawner without logs must not break the panel
                lines = [f"(logs unavailable: {e})"]
        elif rt is not None and rt.failure:
            lines = list(rt.failure.get("log_tail") or [])
        self.write_json({"server": f"{name}/{server}", "lines": lines})


priority = 50
handlers = [
    (r"/users/([^/]+)/server-logs/([^/]*)", ServerLogsHandler),
    (r"/users/([^/]+)/server", ServerRecordHandler),
    (r"/users/([^/]+)/servers/([^/]*)", ServerRecordHandler),
]
