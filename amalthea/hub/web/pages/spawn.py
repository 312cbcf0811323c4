"""``/hub/spawn[/USER[/SERVER]]`` and ``/hub/spawn-pending/USER[/SERVER]`` (protocol §11.5).

Options forms: when the spawner class has ``options_form`` (a string or a callable returning
HTML, e.g. from amalthea.spawners.profiles) the GET shows it; POSTed fields go through the
spawner class's ``options_from_form`` (default: dict of lists of strings, single values
unwrapped) into ``user_options``. With ``c.Amalthea.profiles`` the profiles form and its reader
(``hub.extras``, from amalthea.hub.lifecycle.profiles_glue) take their place; options the
lifecycle refuses (400) show the form again with the reason.
"""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import urlencode

from tornado import web

from amalthea.hub.lifecycle import ServerState, SpawnRefused
from amalthea.hub.security.redirects import safe_next
from amalthea.hub.store import queries
from amalthea.hub.web.api.servers import valid_server_name
from amalthea.hub.web.base import PageHandler, authenticated
from amalthea.hub.web.pages.user import need_user


class SpawnHandler(PageHandler):
    def _target(self, user: str | None, server: str | None) -> tuple[str, str]:
        who = self.current_user
        assert who is not None
        name, sname = user or who.name, server or ""
        if not who.can("servers", server=f"{name}/{sname}") and not who.can(
            "start:servers", server=f"{name}/{sname}"
        ):
            raise web.HTTPError(403, reason=f"You may not start servers for {name}.")
        if sname and not self.hub.settings.allow_named_servers:
            raise web.HTTPError(400, reason="Named servers are not enabled.")
        return name, sname

    def _pending_url(self, name: str, sname: str) -> str:
        url = f"{self.hub_prefix}spawn-pending/{name}" + (f"/{sname}" if sname else "")
        nxt = self.get_argument("next", "")
        return url + (("?" + urlencode({"next": nxt})) if nxt else "")

    async def _options_form(self, name: str, sname: str = "") -> str:
        glue = self.hub.extras.get("options_form")  # profiles (c.Amalthea.profiles) win
        form = glue or getattr(self.hub.spawner_class, "options_form", "")
        if callable(form):
            form = form(name, sname) if glue else form(name)
            if inspect.isawaitable(form):
                form = await form
        return str(form or "")

    @authenticated
    async def get(self, user: str | None = None, server: str | None = None) -> None:
        name, sname = self._target(user, server)
        rt = self.hub.servers.get(name, sname)
        if rt is not None and rt.state is ServerState.RUNNING:
            self.redirect(safe_next(self.get_argument("next", ""), self.base_url) or rt.prefix)
            return
        if rt is not None and rt.state is ServerState.PENDING:
            self.redirect(self._pending_url(name, sname))
            return
        options = {k[4:]: v[-1].decode() for k, v in self.request.query_arguments.items()
                   if k.startswith("opt-")}  # fmt: skip
        form = await self._options_form(name, sname)
        if form and not options:
            self.render_template("spawn.html", options_form=form, for_user=name, server=sname)
            return
        await self._spawn(name, sname, options or None)

    @authenticated
    async def post(self, user: str | None = None, server: str | None = None) -> None:
        name, sname = self._target(user, server)
        fields = {k: [v.decode() for v in vs] for k, vs in self.request.body_arguments.items()
                  if k != "_xsrf"}  # fmt: skip
        for key, files in self.request.files.items():
            fields[f"{key}_file"] = [f["body"].decode(errors="replace") for f in files]
        converter = self.hub.extras.get("options_from_form") or getattr(
            self.hub.spawner_class, "options_from_form", None
        )
        try:
            options = converter(fields) if callable(converter) else _default_options(fields)
            if inspect.isawaitable(options):
                options = await options
        except (ValueError, TypeError) as e:
            form = await self._options_form(name, sname)
            self.render_template("spawn.html", status=400, options_form=form, for_user=name,
                                 server=sname, error=str(e))  # fmt: skip
            return
        await self._spawn(name, sname, options)

    async def _spawn(self, name: str, sname: str, options: dict[str, Any] | None) -> None:
        if sname and not valid_server_name(sname):
            raise web.HTTPError(400, reason=f"Invalid server_name: {sname!r}")
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
        if user is None:
            raise web.HTTPError(404, reason=f"No such user: {name}")
        try:
            rt = await self.hub.servers.spawn(user, sname, options)
        except SpawnRefused as e:
            form = await self._options_form(name, sname) if e.status == 400 else ""
            if form:  # refused options: show the form again with the reason
                self.render_template("spawn.html", status=400, options_form=form,
                                     for_user=name, server=sname, error=e.message)  # fmt: skip
                return
            raise web.HTTPError(e.status, reason=e.message) from None
        await self.hub.servers.wait(rt, 1.0)
        if rt.state is ServerState.RUNNING:
            self.redirect(safe_next(self.get_argument("next", ""), self.base_url) or rt.prefix)
            return
        self.redirect(self._pending_url(name, sname))


def _default_options(fields: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}


class SpawnPendingHandler(PageHandler):
    @authenticated
    async def get(self, user: str, server: str | None = None) -> None:
        who = self.current_user
        assert who is not None
        sname = server or ""
        if not (
            who.can("servers", server=f"{user}/{sname}")
            or who.can("read:servers", server=f"{user}/{sname}")
        ):
            raise web.HTTPError(404)
        rt = self.hub.servers.get(user, sname)
        if rt is None:
            await need_user(self, user)
        state = rt.state if rt else ServerState.STOPPED
        nxt = safe_next(self.get_argument("next", ""), self.base_url)
        spawn_url = f"{self.hub_prefix}spawn/{user}" + (f"/{sname}" if sname else "")
        if rt is not None and state is ServerState.RUNNING:
            self.redirect(nxt or rt.prefix)
            return
        api = f"{self.hub_prefix}api/users/{user}/" + (f"servers/{sname}" if sname else "server")
        ctx: dict[str, Any] = {"for_user": user, "server": sname, "spawn_url": spawn_url,
               "progress_url": f"{api}/progress?_xsrf={self.xsrf}", "next": nxt or (rt.prefix if rt else "")}  # fmt: skip
        if state is ServerState.PENDING:
            self.render_template("spawn_pending.html", **ctx)
        elif state is ServerState.STOPPING:
            self.render_template("not_running.html", stopping=True, **ctx)
        elif rt is not None and rt.failure and state is ServerState.FAILED:
            self.render_template("not_running.html", status=500, failure=rt.failure, **ctx)
        else:
            self.render_template("not_running.html", **ctx)


priority = 30
handlers = [
    (r"spawn", SpawnHandler),
    (r"spawn/([^/]+)", SpawnHandler),
    (r"spawn/([^/]+)/([^/]+)", SpawnHandler),
    (r"spawn-pending/([^/]+)", SpawnPendingHandler),
    (r"spawn-pending/([^/]+)/([^/]+)", SpawnPendingHandler),
]
