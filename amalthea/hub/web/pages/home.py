"""``/hub/`` and ``/hub/home`` (the control panel)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from tornado import web

from amalthea.hub.clock import isoformat, utcnow
from amalthea.hub.lifecycle import ServerState
from amalthea.hub.store import queries
from amalthea.hub.store.models import Server
from amalthea.hub.web.base import PageHandler, authenticated
from amalthea.hub.web.pages.login import default_next


class RootHandler(PageHandler):
    async def get(self) -> None:
        if self.current_user is None:
            self.redirect(self.hub_prefix + "login?next=" + self.hub_prefix.replace("/", "%2F"))
            return
        if self.hub.settings.default_url:
            self.redirect(self.hub.settings.default_url)
            return
        self.redirect(await default_next(self, self.current_user.name))


class HomeHandler(PageHandler):
    @authenticated
    async def get(self) -> None:
        who = self.current_user
        assert who is not None
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, who.name)
        servers: list[dict[str, Any]] = []
        for srv in sorted(user.servers if user else [], key=lambda x: x.name):
            rt = self.hub.servers.get(who.name, srv.name)
            state = (
                rt.state if rt else ServerState(srv.state if srv.state == "failed" else "stopped")
            )
            servers.append({
                "name": srv.name, "display_name": srv.display_name or srv.name,
                "state": state.value, "url": self.user_url(who.name, srv.name),
                "last_activity": isoformat(srv.last_activity),
                "failure": (rt.failure if rt else srv.failure),
            })  # fmt: skip
        default = next((x for x in servers if x["name"] == ""), None)
        named = [x for x in servers if x["name"]]
        self.render_template(
            "home.html", default=default, named=named, cull_warnings=self._cull_warnings(servers),
            allow_named_servers=self.hub.settings.allow_named_servers,
            spawn_url=self.hub_prefix + "spawn/" + who.name,
        )  # fmt: skip

    def _cull_warnings(self, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The idle culler's pending warnings for this user's running servers, for the banner."""
        culler = self.hub.extras.get("culler")
        assert self.current_user is not None
        if culler is None:
            return []
        out = []
        for srv in servers:
            notice = culler.notices.get((self.current_user.name, srv["name"]))
            if notice is not None and srv["state"] == "running":
                left = (notice.cull_at - utcnow()).total_seconds()
                out.append({**srv, "minutes": max(1, math.ceil(left / 60))})
        return out


class KeepRunningHandler(PageHandler):
    """``POST /hub/home/keep-running`` (form: ``server_name``, ``_xsrf``): the banner's button.

    Counts as activity on that server, exactly as if the user had opened it, and withdraws the
    culler's warning at once rather than at its next pass."""

    @authenticated
    async def post(self) -> None:
        who = self.current_user
        assert who is not None
        name = self.get_body_argument("server_name", "")
        now = utcnow()
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, who.name)
            assert user is not None
            srv = (
                await s.execute(
                    select(Server).where(Server.user_id == user.id, Server.name == name)
                )
            ).scalar()
            if srv is None:
                raise web.HTTPError(404, reason=f"You have no server named {name!r}.")
            srv.last_activity = queries.bump(srv.last_activity, now)
            user.last_activity = queries.bump(user.last_activity, now)
            await s.commit()
        culler = self.hub.extras.get("culler")
        if culler is not None:
            culler.notices.pop((who.name, name), None)
        self.redirect(self.hub_prefix + "home")


priority = 20
handlers = [
    (r"?", RootHandler), (r"home", HomeHandler), (r"home/keep-running", KeepRunningHandler),
]  # fmt: skip
