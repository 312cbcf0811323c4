"""Shares and share codes (protocol §12): ``/shares/...``, ``/share-codes/...``,
``/users/NAME/shared[/OWNER/SERVER]``, ``/groups/NAME/shared[/OWNER/SERVER]``.

All listings answer the pagination envelope (with or without the Accept header), ordered by id,
expired entries skipped. Behaviour lives in ``amalthea.hub.sharing``; this is the HTTP shell.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import aliased

from amalthea.hub import rbac, sharing
from amalthea.hub.clock import isoformat, utcnow
from amalthea.hub.sharing import ShareError
from amalthea.hub.store.models import Group, Server, Share, ShareCode, User, user_group_map
from amalthea.hub.web.api._support import RestHandler, bad

Owner = aliased(User)
Recipient = aliased(User)


def _alive(model: Any) -> Any:
    return or_(model.expires_at.is_(None), model.expires_at > utcnow())


class ShareAPI(RestHandler):
    def _raise(self, e: ShareError) -> None:
        raise bad(str(e), e.status) from None

    async def _target(self, s: Any, owner: str, server: str) -> sharing.ShareTarget:
        try:
            return await sharing.target(s, owner, server)
        except ShareError as e:
            self._raise(e)
            raise

    def _ready(self, owner: str, server: str, state: str) -> bool:
        rt = self.hub.servers.get(owner, server)
        return (rt.state.value if rt is not None else state) == "running"

    def _server(self, owner: str, srv: Any) -> dict[str, Any]:
        urls = self.urls
        return sharing.server_model(owner, srv, urls.base_url, urls.public_url,
                                    self._ready(owner, srv.name, srv.state))  # fmt: skip

    async def _share_page(self, *conds: Any) -> None:
        page, _ = self.page(always_envelope=True)
        base = (
            select(Share, Owner.name, Server, Recipient.name, Group.name)
            .join(Owner, Owner.id == Share.owner_id)
            .join(Server, Server.id == Share.server_id)
            .outerjoin(Recipient, Recipient.id == Share.user_id)
            .outerjoin(Group, Group.id == Share.group_id)
            .where(_alive(Share), *conds)
        )
        async with self.hub.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(
                select(Share.id).join(Owner, Owner.id == Share.owner_id)
                .join(Server, Server.id == Share.server_id)
                .outerjoin(Recipient, Recipient.id == Share.user_id)
                .outerjoin(Group, Group.id == Share.group_id)
                .where(_alive(Share), *conds).subquery()))).scalar()  # fmt: skip
            rows = (await s.execute(
                base.order_by(Share.id).offset(page.offset).limit(page.limit))).all()  # fmt: skip
        items = [self._share_model(*r) for r in rows]
        self.write_page(items, page, int(total or 0), True)

    def _share_model(self, share: Share, owner: str, srv: Any, uname: str | None,
                     gname: str | None) -> dict[str, Any]:  # fmt: skip
        return {
            "server": self._server(owner, srv),
            "scopes": list(share.scopes or []),
            "user": {"name": uname} if uname is not None else None,
            "group": {"name": gname} if gname is not None else None,
            "kind": "user" if uname is not None else "group",
            "created_at": isoformat(share.created_at),
        }


class OwnerSharesHandler(ShareAPI):
    async def get(self, owner: str) -> None:
        await self.need_any(["read:shares"], user=owner)
        async with self.hub.db.session() as s:
            if (await s.execute(select(User.id).where(User.name == owner))).scalar() is None:
                raise bad(f"No such user {owner[:80]}", 404)
        await self._share_page(Owner.name == owner)


class ServerSharesHandler(ShareAPI):
    async def get(self, owner: str, server: str) -> None:
        await self.need_any(["read:shares"], server=f"{owner}/{server}")
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
        await self._share_page(Share.server_id == t.server.id)

    async def post(self, owner: str, server: str) -> None:
        await self.need_any(["shares"], server=f"{owner}/{server}")
        body = self.body_object({"user", "group", "scopes"}, required=True)
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
            try:
                scopes = sharing.normalize_scopes(t, body.get("scopes"))
                uid, gid, rname = await sharing.recipient(s, body)
            except ShareError as e:
                self._raise(e)
                raise
            if uid is not None and uid == t.owner.id:
                raise bad("Cannot share a server with its owner")
        # permission checks may read the database: outside the session (SQLite has one connection)
        await self._check_grantable(scopes, owner, uid is not None, rname)
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
            share = await sharing.grant(s, t, scopes, uid, gid)
            await s.commit()
            model = self._share_model(share, owner, t.server, rname if uid else None,
                                      rname if gid else None)  # fmt: skip
        self.forget_permissions()
        self.write_json(model, 200)

    async def _check_grantable(
        self, scopes: list[str], owner: str, to_user: bool, name: str
    ) -> None:
        held = self.held
        groups = await self.groups_of(owner)
        missing = rbac.not_covered(held, rbac.expand(scopes), {owner: groups})
        if missing:
            raise bad(f"Not allowed to share scopes you don't hold: {missing}", 403)
        need = "read:users:name" if to_user else "read:groups:name"
        resource = {"user": name} if to_user else {"group": name}
        if not await self.can(need, **resource):
            raise bad(f"Sharing by name needs {need} on {name[:80]}", 403)

    async def patch(self, owner: str, server: str) -> None:
        await self.need_any(["shares"], server=f"{owner}/{server}")
        body = self.body_object({"user", "group", "scopes"}, required=True)
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
            if body.get("scopes") is not None:
                try:
                    revoke = set(sharing.normalize_scopes(t, body["scopes"]))
                except ShareError as e:
                    self._raise(e)
                    raise
            else:
                revoke = None
            try:
                uid, gid, rname = await sharing.recipient(s, body)
            except ShareError as e:
                if not e.missing:
                    self._raise(e)
                self.write_json({})  # no such recipient: nothing to revoke
                return
            cond = Share.user_id == uid if uid is not None else Share.group_id == gid
            share = (
                await s.execute(select(Share).where(Share.server_id == t.server.id, cond))
            ).scalar()
            model: dict[str, Any] = {}
            if share is not None:
                left = [] if revoke is None else [x for x in share.scopes or [] if x not in revoke]
                if left:
                    share.scopes = left
                    model = self._share_model(share, owner, t.server, rname if uid else None,
                                              rname if gid else None)  # fmt: skip
                else:
                    await s.delete(share)
                await s.commit()
        self.forget_permissions()
        self.write_json(model)

    async def delete(self, owner: str, server: str) -> None:
        await self.need_any(["shares"], server=f"{owner}/{server}")
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
            await s.execute(delete(Share).where(Share.server_id == t.server.id))
            await s.commit()
        self.forget_permissions()
        self.write_empty(204)


class ShareCodeAPI(ShareAPI):
    async def _codes(self, *conds: Any) -> None:
        page, _ = self.page(always_envelope=True)
        q = (select(ShareCode, Owner.name, Server).join(Owner, Owner.id == ShareCode.owner_id)
             .join(Server, Server.id == ShareCode.server_id).where(_alive(ShareCode), *conds))  # fmt: skip
        async with self.hub.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(q.subquery()))).scalar()
            rows = (await s.execute(
                q.order_by(ShareCode.id).offset(page.offset).limit(page.limit))).all()  # fmt: skip
        items = [sharing.code_model(c, self._server(o, srv)) for c, o, srv in rows]
        self.write_page(items, page, int(total or 0), True)


class OwnerCodesHandler(ShareCodeAPI):
    async def get(self, owner: str) -> None:
        await self.need_any(["read:shares"], user=owner)
        async with self.hub.db.session() as s:
            if (await s.execute(select(User.id).where(User.name == owner))).scalar() is None:
                raise bad(f"No such user {owner[:80]}", 404)
        await self._codes(Owner.name == owner)


class ServerCodesHandler(ShareCodeAPI):
    async def get(self, owner: str, server: str) -> None:
        await self.need_any(["read:shares"], server=f"{owner}/{server}")
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
        await self._codes(ShareCode.server_id == t.server.id)

    async def post(self, owner: str, server: str) -> None:
        await self.need_any(["shares"], server=f"{owner}/{server}")
        body = self.body_object({"scopes", "expires_in"})
        owner_groups = await self.groups_of(owner)  # before the session: SQLite has one connection
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
            try:
                scopes = sharing.normalize_scopes(t, body.get("scopes"))
                seconds = sharing.check_expires_in(body.get("expires_in"))
            except ShareError as e:
                self._raise(e)
                raise
            missing = rbac.not_covered(self.held, rbac.expand(scopes), {owner: owner_groups})
            if missing:
                raise bad(f"Not allowed to share scopes you don't hold: {missing}", 403)
            code = sharing.new_code()
            row = ShareCode(owner_id=t.owner.id, server_id=t.server.id, scopes=scopes,
                            expires_at=sharing.code_expiry(seconds), created_at=utcnow(),
                            **sharing.code_fields(code))  # fmt: skip
            s.add(row)
            await s.commit()
            model = sharing.code_model(row, self._server(owner, t.server))
        accept = f"{self.hub_prefix}accept-share?code={code}"
        model.update(code=code, accept_url=accept, full_accept_url=self.urls.full(accept))
        self.write_json(model, 200)

    async def delete(self, owner: str, server: str) -> None:
        await self.need_any(["shares"], server=f"{owner}/{server}")
        code, cid = self.get_argument("code", None), self.get_argument("id", None)
        async with self.hub.db.session() as s:
            t = await self._target(s, owner, server)
            cond = [ShareCode.server_id == t.server.id]
            if code is not None:
                found = await sharing.find_code(s, code)
                if found is None or found.server_id != t.server.id:
                    raise bad("No such share code", 404)
                cond.append(ShareCode.id == found.id)
            elif cid is not None:
                if not cid.startswith("sc_") or not cid[3:].isdigit() or len(cid) > 20:
                    raise bad(f"No such share code id {cid[:40]!r}", 404)
                cond.append(ShareCode.id == int(cid[3:]))
            result = await s.execute(delete(ShareCode).where(*cond))
            await s.commit()
        if (code is not None or cid is not None) and not getattr(result, "rowcount", 0):
            raise bad("No such share code", 404)
        self.write_empty(204)


class UserSharedHandler(ShareAPI):
    async def get(self, name: str) -> None:
        await self.need_any(["read:users:shares"], user=name)
        async with self.hub.db.session() as s:
            uid = (await s.execute(select(User.id).where(User.name == name))).scalar()
        if uid is None:
            raise bad(f"No such user {name[:80]}", 404)
        groups = select(user_group_map.c.group_id).where(user_group_map.c.user_id == uid)
        await self._share_page(or_(Share.user_id == uid, Share.group_id.in_(groups)))


class _RecipientShareAPI(ShareAPI):
    """Shared behaviour of the per-recipient share endpoints (user and group)."""

    async def _revoke(self, share_id: int) -> None:
        async with self.hub.db.session() as s:
            await s.execute(delete(Share).where(Share.id == share_id))
            await s.commit()
        self.forget_permissions()  # the recipient's cached scopes must not outlive the share
        self.write_empty(204)


class UserSharedServerHandler(_RecipientShareAPI):
    async def _find(self, name: str, owner: str, server: str) -> tuple[Any, ...]:
        async with self.hub.db.session() as s:
            row = (await s.execute(
                select(Share, Owner.name, Server, Recipient.name)
                .join(Owner, Owner.id == Share.owner_id).join(Server, Server.id == Share.server_id)
                .join(Recipient, Recipient.id == Share.user_id)
                .where(Recipient.name == name, Owner.name == owner, Server.name == server,
                       _alive(Share))
            )).first()  # fmt: skip
        if row is None:
            raise bad(f"No share of {owner[:80]}/{server[:40]} with {name[:80]}", 404)
        return tuple(row)

    async def get(self, name: str, owner: str, server: str) -> None:
        await self.need_any(["read:users:shares"], user=name)
        share, oname, srv, uname = await self._find(name, owner, server)
        self.write_json(self._share_model(share, oname, srv, uname, None))

    async def delete(self, name: str, owner: str, server: str) -> None:
        await self.need_any(["users:shares"], user=name)
        share, *_ = await self._find(name, owner, server)
        await self._revoke(share.id)


class GroupSharedHandler(ShareAPI):
    async def get(self, name: str) -> None:
        await self.need_any(["read:groups:shares"], group=name)
        async with self.hub.db.session() as s:
            gid = (await s.execute(select(Group.id).where(Group.name == name))).scalar()
        if gid is None:
            raise bad("No such group", 404)
        await self._share_page(Share.group_id == gid)


class GroupSharedServerHandler(_RecipientShareAPI):
    async def _find(self, name: str, owner: str, server: str) -> tuple[Any, ...]:
        async with self.hub.db.session() as s:
            row = (await s.execute(
                select(Share, Owner.name, Server, Group.name)
                .join(Owner, Owner.id == Share.owner_id).join(Server, Server.id == Share.server_id)
                .join(Group, Group.id == Share.group_id)
                .where(Group.name == name, Owner.name == owner, Server.name == server,
                       _alive(Share))
            )).first()  # fmt: skip
        if row is None:
            raise bad(f"No share of {owner[:80]}/{server[:40]} with group {name[:80]}", 404)
        return tuple(row)

    async def get(self, name: str, owner: str, server: str) -> None:
        await self.need_any(["read:groups:shares"], group=name)
        share, oname, srv, gname = await self._find(name, owner, server)
        self.write_json(self._share_model(share, oname, srv, None, gname))

    async def delete(self, name: str, owner: str, server: str) -> None:
        await self.need_any(["groups:shares"], group=name)
        share, *_ = await self._find(name, owner, server)
        await self._revoke(share.id)


handlers = [
    (r"/shares/([^/]+)", OwnerSharesHandler),
    (r"/shares/([^/]+)/([^/]*)", ServerSharesHandler),
    (r"/share-codes/([^/]+)", OwnerCodesHandler),
    (r"/share-codes/([^/]+)/([^/]*)", ServerCodesHandler),
    (r"/users/([^/]+)/shared", UserSharedHandler),
    (r"/users/([^/]+)/shared/([^/]+)/([^/]*)", UserSharedServerHandler),
    (r"/groups/([^/]+)/shared", GroupSharedHandler),
    (r"/groups/([^/]+)/shared/([^/]+)/([^/]*)", GroupSharedServerHandler),
]
