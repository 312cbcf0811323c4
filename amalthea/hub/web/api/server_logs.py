"""``GET /hub/api/users/NAME/server/logs`` and ``.../servers/SERVER/logs`` (Amalthea extension).

The last ``lines`` (default 100, at most 5000) lines the server wrote, for its owner and admins
(scope ``read:servers`` on that server). Works for running, failed and stopped servers as long as
the spawner keeps its log (local spawners keep the last run's log file).
"""

from __future__ import annotations

from tornado import web

from amalthea.hub.store import queries
from amalthea.hub.web.base import APIHandler
from amalthea.spawners.base import SpawnContext


class ServerLogsHandler(APIHandler):
    async def get(self, name: str, server: str = "") -> None:
        server = server or ""
        self.need(("read:servers", "servers"), server=f"{name}/{server}")
        try:
            lines = max(1, min(5000, int(self.get_argument("lines", "100"))))
        except ValueError:
            raise web.HTTPError(400, reason="lines must be an integer") from None
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
        if user is None or (server and not any(x.name == server for x in user.servers)):
            raise web.HTTPError(404, reason=f"No such server: {name}/{server}")
        rt = self.hub.servers.get(name, server)
        spawner = rt.spawner if rt is not None else None
        if spawner is None:
            ctx = SpawnContext(username=name, server_name=server, env={},
                               data_dir=self.hub.servers.data_dir)  # fmt: skip
            spawner = self.hub.servers.spawner_factory(ctx)
        out = await spawner.logs(lines)
        if not out and rt is not None and rt.failure:
            out = list(rt.failure.get("log_tail") or [])
        self.write_json({"user": name, "server": server, "lines": out})


handlers = [
    (r"/users/([^/]+)/server/logs", ServerLogsHandler),
    (r"/users/([^/]+)/servers/([^/]+)/logs", ServerLogsHandler),
]
