"""``/hub/accept-share?code=…``: accept a share code (protocol §11.10, §12).

GET shows what accepting grants; POST exchanges the code for a Share of this user and sends
them to the shared server. The code is checked on both steps (it may expire in between).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from tornado import web

from amalthea.hub import rbac, sharing
from amalthea.hub.security.redirects import safe_next
from amalthea.hub.store.models import Server, User
from amalthea.hub.web.base import PageHandler, authenticated


class AcceptShareHandler(PageHandler):
    async def _code(self, code: str | None) -> tuple[Any, str, Server]:
        if not code:
            raise web.HTTPError(400, reason="The link has no share code (?code=...).")
        async with self.hub.db.session() as s:
            row = await sharing.find_code(s, code)
            if row is None:
                raise web.HTTPError(404, reason="Share not found or expired")
            owner = await s.get(User, row.owner_id)
            srv = await s.get(Server, row.server_id)
        assert owner is not None and srv is not None
        who = self.current_user
        assert who is not None
        if owner.id == who.id and who.kind == "user":
            raise web.HTTPError(403, reason="This is your own share code: send it to someone else.")
        return row, owner.name, srv

    @authenticated
    async def get(self) -> None:
        row, owner, srv = await self._code(self.get_argument("code", None))
        rt = self.hub.servers.get(owner, srv.name)
        self.render_template(
            "accept_share.html", code=self.get_argument("code"), owner=owner,
            server_name=srv.name, server_url=self.user_url(owner, srv.name),
            ready=bool(rt and rt.ready), scopes=[rbac.describe(s) for s in row.scopes or []],
            next=self.get_argument("next", ""),
        )  # fmt: skip

    @authenticated
    async def post(self) -> None:
        code = self.get_argument("code", None)
        _row, owner, srv = await self._code(code)
        who = self.current_user
        assert who is not None and code is not None
        async with self.hub.db.session() as s:
            user = (await s.execute(select(User).where(User.name == who.name))).scalar()
            if user is None:
                raise web.HTTPError(403, reason="Only users can accept share codes.")
            try:
                await sharing.exchange_code(s, code, user)
            except sharing.ShareError as e:
                raise web.HTTPError(400 if e.status == 403 else e.status, reason=str(e)) from None
            await s.commit()
        self.hub.identities.forget_all()
        target = safe_next(self.get_argument("next", None), self.base_url)
        self.redirect(target or self.user_url(owner, srv.name))


handlers = [(r"accept-share", AcceptShareHandler)]
