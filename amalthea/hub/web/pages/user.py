"""Requests for servers the proxy has no route for (protocol §11.6, §11.7, §1).

- ``/hub/user/NAME[/SERVER]/PATH``: server running (proxy lagging) → back to the server;
  API-like or non-GET → 424 JSON; pending/failed → spawn-pending; else 424 HTML with a start
  button. Never spawns by itself.
- ``/hub/user-redirect/PATH`` → the current user's own server path.
- anything outside ``{base}hub/`` → 302 to the same path under ``{base}hub/``.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from tornado import web

from amalthea.hub.lifecycle import ServerState
from amalthea.hub.store import queries
from amalthea.hub.web.base import PageHandler, authenticated


class UserServerHandler(PageHandler):
    accepts_token = True

    async def _handle(self, name: str, rest: str | None) -> None:
        who = self.current_user
        path = rest or ""
        sname = ""
        first = path.split("/", 1)[0]
        if first and self.hub.settings.allow_named_servers and self.hub.servers.get(name, first):
            sname = first
        if who is None:
            if self.request.method == "GET" and not self._api_like(path):
                self.login_redirect()
                return
            raise web.HTTPError(403, reason="Missing or invalid credentials.")
        if not who.can("access:servers", server=f"{name}/{sname}"):
            raise web.HTTPError(404)
        rt = self.hub.servers.get(name, sname)
        if rt is None:  # an admin passes the check above for any name: a typo is not "stopped"
            await need_user(self, name)
        state = rt.state if rt else ServerState.STOPPED
        original = f"{self.base_url}user/{quote(name, safe='@~')}/{path}"
        if self.request.query:
            original += "?" + self.request.query
        if rt is not None and state is ServerState.RUNNING:
            raw = self.get_argument("redirects", "0") or "0"
            # the counter comes from the URL: garbage counts as a fresh start, not a 500
            redirects = int(raw) if raw.isdigit() and len(raw) < 6 else 0
            if redirects >= 4:
                raise web.HTTPError(503, reason=(
                    "Your server is running, but the hub sent you back to it several times and "
                    "the proxy still does not route there (a redirect loop). The proxy may be "
                    "restarting or out of sync: try again in a minute; if it persists, stop and "
                    "start the server, or tell the administrator."))  # fmt: skip
            sep = "&" if "?" in original else "?"
            self.redirect(f"{original}{sep}redirects={redirects + 1}")
            return
        spawn_url = f"{self.hub_prefix}spawn/{name}" + (f"/{sname}" if sname else "")
        if self._api_like(path) or self.request.method != "GET":
            self.set_status(424)
            public = (
                self.hub.settings.public_url or f"{self.request.protocol}://{self.request.host}"
            )
            self.write_json({"message": f"JupyterHub server no longer running at {original}. "
                             f"Restart the server at {public}{spawn_url}"}, 424)  # fmt: skip
            return
        if state is ServerState.PENDING or (rt is not None and state is ServerState.FAILED):
            pending = f"{self.hub_prefix}spawn-pending/{name}" + (f"/{sname}" if sname else "")
            self.redirect(pending + "?" + urlencode({"next": original}), status=303)
            return
        self.render_template(
            "not_running.html", status=424, for_user=name, server=sname,
            spawn_url=spawn_url + "?" + urlencode({"next": original}), next=original,
        )  # fmt: skip

    def _api_like(self, path: str) -> bool:
        accept = self.request.headers.get("Accept", "")
        return accept.startswith("application/json") or "api" in path.split("/")

    async def get(self, name: str, rest: str | None = None) -> None:
        await self._handle(name, rest)

    async def post(self, name: str, rest: str | None = None) -> None:
        await self._handle(name, rest)

    put = patch = delete = post


async def need_user(handler: PageHandler, name: str) -> None:
    async with handler.hub.db.session() as s:
        if not await queries.user_exists(s, name):
            raise web.HTTPError(404, reason=f"There is no user named {name[:80]!r} on this hub.")


class UserRedirectHandler(PageHandler):
    @authenticated
    def get(self, path: str) -> None:
        who = self.current_user
        assert who is not None
        target = f"{self.user_url(who.name)}{path}"
        if self.request.query:
            target += "?" + self.request.query
        self.redirect(
            f"{self.hub_prefix}spawn/{quote(who.name, safe='@~')}?" + urlencode({"next": target})
        )


class AddSlashHandler(PageHandler):
    def get(self) -> None:
        self.redirect(self.request.path + "/", permanent=True)


class ToHubHandler(PageHandler):
    """Anything outside the hub prefix that reaches the hub (default proxy route)."""

    def get(self, path: str) -> None:
        target = self.hub_prefix + path
        if self.request.query:
            target += "?" + self.request.query
        self.redirect(target)


priority = 40
handlers = [
    (r"user/([^/]+)/?", UserServerHandler),
    (r"user/([^/]+)/(.*)", UserServerHandler),
    (r"user-redirect/(.*)", UserRedirectHandler),
]
