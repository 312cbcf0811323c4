"""``/hub/admin``: the admin panel, a small page driven entirely by the REST API (§11.9).

The page itself only needs ``admin-ui``; every action it takes is an API call checked against
the caller's own scopes, so a limited admin sees errors, not extra powers.
"""

from __future__ import annotations

from tornado import web

from amalthea.hub.web.base import PageHandler, authenticated


class AdminHandler(PageHandler):
    @authenticated
    async def get(self) -> None:
        who = self.current_user
        assert who is not None
        if not who.can("admin-ui"):
            raise web.HTTPError(403, reason="The admin panel needs the admin-ui scope.")
        self.render_template(
            "admin.html", page_limit=50, allow_named_servers=self.hub.settings.allow_named_servers
        )


handlers = [(r"admin", AdminHandler)]
