"""``/groups``, ``/groups/NAME``, ``/groups/NAME/users``, ``/groups/NAME/properties`` (§5.7).

Membership changes change permissions (group roles, group shares), so every write drops the
cached identities at once: a removed member loses the group's scopes on their next request.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select

from amalthea.hub import rbac
from amalthea.hub.store.models import Group, User, user_group_map
from amalthea.hub.web.api._support import RestHandler, bad, check_names
from amalthea.hub.web.api.views import group_model, load_groups

MAX_GROUP_NAME = 255


def check_group_name(name: str) -> None:
    if not name or len(name) > MAX_GROUP_NAME or name != name.strip() or "/" in name:
        raise bad(f"Invalid group name {name[:80]!r}: 1-{MAX_GROUP_NAME} characters, no '/', "
                  "no surrounding spaces")  # fmt: skip


async def _user_ids(s: Any, names: list[str]) -> list[int]:
    rows = dict((await s.execute(select(User.name, User.id).where(User.name.in_(names)))).all())
    missing = [n for n in names if n not in rows]
    if missing:
        raise bad(f"No such user(s): {missing[:20]}")
    return [rows[n] for n in names]


class GroupAPI(RestHandler):
    async def _group_id(self, s: Any, name: str) -> int:
        gid = (await s.execute(select(Group.id).where(Group.name == name))).scalar()
        if gid is None:
            raise bad("No such group", 404)
        return int(gid)

    async def _models(self, ids: list[int]) -> list[dict[str, Any]]:
        async with self.hub.db.session() as s:
            loaded = await load_groups(s, ids)
        held = self.held
        return [group_model(held, g.name, users, g.properties, roles)
                for g, users, roles in loaded]  # fmt: skip


class GroupListHandler(GroupAPI):
    async def get(self) -> None:
        flt = rbac.filters(self.held, "list:groups")
        if flt is None or not (flt.unfiltered or flt.groups):
            raise bad("Action is not authorized with current scopes; requires any of "
                      "[list:groups]", 403)  # fmt: skip
        page, env = self.page()
        query = select(Group.id)
        if not flt.unfiltered:
            query = query.where(Group.name.in_(flt.groups))
        async with self.hub.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(query.subquery()))).scalar()
            ids = list((await s.execute(
                query.order_by(Group.id).offset(page.offset).limit(page.limit))).scalars())  # fmt: skip
        self.write_page(await self._models(ids), page, int(total or 0), env)

    async def post(self) -> None:
        await self.need_any(["admin:groups"])
        body = self.body_object({"groups", "users"}, required=True)
        names = check_names(body.get("groups"), "groups")
        if not names:
            raise bad("Must specify at least one group to create")
        for name in names:
            check_group_name(name)
        members = check_names(body.get("users", []), "users")
        async with self.hub.db.session() as s:
            exists = list(
                (await s.execute(select(Group.name).where(Group.name.in_(names)))).scalars()
            )
            if exists:
                raise bad(f"Group {exists[0]} already exists", 409)
            uids = await _user_ids(s, members)
            groups = [Group(name=n, properties={}) for n in names]
            s.add_all(groups)
            await s.flush()
            rows = [{"user_id": u, "group_id": g.id} for g in groups for u in uids]
            if rows:
                await s.execute(insert(user_group_map), rows)
            await s.commit()
            ids = [g.id for g in groups]
        self.forget_permissions()
        self.write_json(await self._models(ids), 201)


class GroupHandler(GroupAPI):
    async def get(self, name: str) -> None:
        await self.need_any(["read:groups", "read:groups:name", "read:roles:groups"], group=name)
        async with self.hub.db.session() as s:
            gid = await self._group_id(s, name)
        self.write_json((await self._models([gid]))[0])

    async def post(self, name: str) -> None:
        await self.need_any(["admin:groups"], group=name)
        check_group_name(name)
        body = self.body_object({"users"})
        members = check_names(body.get("users", []), "users")
        async with self.hub.db.session() as s:
            if (await s.execute(select(Group.id).where(Group.name == name))).scalar():
                raise bad(f"Group {name} already exists", 409)
            uids = await _user_ids(s, members)
            group = Group(name=name, properties={})
            s.add(group)
            await s.flush()
            if uids:
                await s.execute(insert(user_group_map),
                                [{"user_id": u, "group_id": group.id} for u in uids])  # fmt: skip
            await s.commit()
            gid = group.id
        self.forget_permissions()
        self.write_json((await self._models([gid]))[0], 201)

    async def delete(self, name: str) -> None:
        await self.need_any(["delete:groups"], group=name)
        async with self.hub.db.session() as s:
            gid = await self._group_id(s, name)
            await s.execute(delete(Group).where(Group.id == gid))
            await s.commit()
        self.forget_permissions()
        self.write_empty(204)


class GroupUsersHandler(GroupAPI):
    async def _members(self, name: str) -> tuple[int, list[int]]:
        await self.need_any(["groups"], group=name)
        body = self.body_object({"users"}, required=True)
        if "users" not in body:
            raise bad("Must specify users to add or remove: {'users': [names]}")
        names = check_names(body["users"], "users")
        async with self.hub.db.session() as s:
            gid = await self._group_id(s, name)
            return gid, await _user_ids(s, names)

    async def post(self, name: str) -> None:
        gid, uids = await self._members(name)
        async with self.hub.db.session() as s:
            have = set((await s.execute(select(user_group_map.c.user_id).where(
                user_group_map.c.group_id == gid))).scalars())  # fmt: skip
            new = [{"user_id": u, "group_id": gid} for u in uids if u not in have]
            if new:
                await s.execute(insert(user_group_map), new)
            await s.commit()
        self.forget_permissions()
        self.write_json((await self._models([gid]))[0])

    async def delete(self, name: str) -> None:
        gid, uids = await self._members(name)
        async with self.hub.db.session() as s:
            await s.execute(delete(user_group_map).where(
                user_group_map.c.group_id == gid, user_group_map.c.user_id.in_(uids)))  # fmt: skip
            await s.commit()
        self.forget_permissions()
        self.write_json((await self._models([gid]))[0])


class GroupPropertiesHandler(GroupAPI):
    async def put(self, name: str) -> None:
        await self.need_any(["groups"], group=name)
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise bad("Group properties must be a JSON object")
        async with self.hub.db.session() as s:
            gid = await self._group_id(s, name)
            group = await s.get(Group, gid)
            assert group is not None
            group.properties = body
            await s.commit()
        self.write_json((await self._models([gid]))[0])


handlers = [
    (r"/groups", GroupListHandler),
    (r"/groups/([^/]+)", GroupHandler),
    (r"/groups/([^/]+)/users", GroupUsersHandler),
    (r"/groups/([^/]+)/properties", GroupPropertiesHandler),
]
