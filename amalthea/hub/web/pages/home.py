"""``/hub/`` and ``/hub/home`` (the control panel)."""

from __future__ import annotations

from typing import Any

from amalthea.hub.clock import isoformat
from amalthea.hub.lifecycle import ServerState
from amalthea.hub.store import queries
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
            "home.html", default=default, named=named,
            allow_named_servers=self.hub.settings.allow_named_servers,
            spawn_url=self.hub_prefix + "spawn/" + who.name,
        )  # fmt: skip


priority = 20
handlers = [(r"?", RootHandler), (r"home", HomeHandler)]
