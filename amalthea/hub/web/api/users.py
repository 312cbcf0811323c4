"""``/users``, ``/users/NAME``, ``/users/NAME/admin-access`` (protocol §5.3, §6).

The list endpoint is the hot path (dashboards, the idle culler and the admin panel poll it at
10,000 users): one COUNT, one page-of-ids query with every filter in SQL, then batched loads
(``views.load_users``); visible keys are decided once per request (``views.UserView``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Connection, delete, exists, func, or_, select
from sqlalchemy.sql import Select

from amalthea.hub import rbac
from amalthea.hub.store import queries
from amalthea.hub.store.models import Group, Server, User, user_group_map
from amalthea.hub.store.reads import reader_for
from amalthea.hub.web.api._support import MAX_NAME, RestHandler, bad, check_names
from amalthea.hub.web.api.views import ACTIVE, UserView, load_user, load_users

READ_USER_SCOPES = (
    "read:users", "read:users:name", "read:servers", "read:users:groups",
    "read:users:activity", "read:roles:users",
)  # fmt: skip
SORTS = {"id": User.id, "name": User.name, "last_activity": User.last_activity}
STATES = ("active", "ready", "inactive")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class UserListHandler(RestHandler):
    async def get(self) -> None:
        held = self.held
        flt = rbac.filters(held, "list:users")
        if flt is None or (not flt.unfiltered and not flt.users and not flt.groups):
            raise bad("Action is not authorized with current scopes; requires any of "
                      "[list:users]", 403)  # fmt: skip
        state = self.get_argument("state", None)
        if state is not None and state not in STATES:
            raise bad(f"Unrecognized state {state[:40]!r}: use one of {list(STATES)}")
        sort = self.get_argument("sort", "id") or "id"
        key = sort.removeprefix("-")
        if key not in SORTS:
            raise bad(f"Unrecognized sort {sort[:40]!r}: use id, name or last_activity "
                      "(prefix - for descending)")  # fmt: skip
        page, env = self.page()
        query: Select[Any] = select(User.id)
        if not flt.unfiltered:
            conds = []
            if flt.users:
                conds.append(User.name.in_(flt.users))
            if flt.groups:
                conds.append(User.id.in_(
                    select(user_group_map.c.user_id)
                    .join(Group, Group.id == user_group_map.c.group_id)
                    .where(Group.name.in_(flt.groups))
                ))  # fmt: skip
            query = query.where(or_(*conds))
        name_filter = self.get_argument("name_filter", None)
        if name_filter:
            query = query.where(User.name.ilike(_like(name_filter), escape="\\"))
        if state is not None:
            wanted = ("running",) if state == "ready" else ACTIVE
            has = exists().where(Server.user_id == User.id, Server.state.in_(wanted))
            query = query.where(~has if state == "inactive" else has)
        col = SORTS[key]
        desc = sort.startswith("-")
        if key == "last_activity":  # the only nullable key: NULLs last ascending, first descending
            order = [col.desc().nulls_first() if desc else col.asc().nulls_last(), User.id]
        else:
            # plain ORDER BY on a unique indexed column lets SQLite walk the index instead of
            # sorting every user per page (NULLS FIRST/LAST or a tie-breaker would defeat it)
            order = [col.desc() if desc else col.asc()]
        view = UserView(held)
        urls, live = self.urls, self.hub.servers
        include_stopped = self.flag("include_stopped_servers")
        paged = query.order_by(*order).offset(page.offset).limit(page.limit)
        counted = select(func.count()).select_from(query.subquery())

        def read(conn: Connection) -> tuple[list[dict[str, Any]], int]:
            # one worker-thread trip for the whole page (see store/reads.py)
            total = conn.execute(counted).scalar() or 0
            rows = load_users(
                conn, paged, include_stopped, live, id_ordered=key == "id",
                want_roles=view.read_roles is not None or view.read_users is not None,
                want_servers=view.read_servers is not None or view.read_users is not None,
            )  # fmt: skip
            return [view.model(urls, u) for u in rows], int(total)

        items, total = await reader_for(self.hub).run(read)
        self.write_page(items, page, total, env)

    async def post(self) -> None:
        who = await self.need_any(["admin:users"])
        body = self.body_object({"usernames", "admin"}, required=True)
        names = check_names(body.get("usernames"), "usernames", check_length=False)
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise bad("admin must be true or false")
        if not names:
            raise bad("Must specify at least one user to create")
        if admin and not who.admin:
            raise bad("Only admins can grant admin permissions", 403)
        auth = self.hub.authenticator
        normalized = []
        for raw in names:
            name = auth.normalize_username(raw)
            problem = auth.validate_username(name)
            if not problem and len(name) > MAX_NAME:  # a custom validate_username allowed it
                problem = f"The username {name[:80]!r} is too long (at most {MAX_NAME} characters)."
            if problem:
                raise bad(f"Invalid usernames: {problem}")
            normalized.append(name)
        async with self.hub.db.session() as s:
            existing = set((await s.execute(
                select(User.name).where(User.name.in_(normalized)))).scalars())  # fmt: skip
            to_create = [n for n in dict.fromkeys(normalized) if n not in existing]
            if not to_create:
                raise bad(f"All {len(normalized)} users already exist", 409)
            ids = await queries.create_users(s, to_create, admin)
            await s.commit()
        for name in to_create:
            auth.allowed_users.add(name)
        await self._answer_models(ids, 201)

    async def _answer_models(self, ids: list[int], status: int) -> None:
        live = self.hub.servers
        rows = await reader_for(self.hub).run(lambda conn: load_users(conn, ids, live=live))
        view = UserView(self.held)
        self.write_json([view.model(self.urls, u) for u in rows], status)


class UserHandler(RestHandler):
    async def _model(self, name: str, status: int = 200, auth_state: bool = False) -> None:
        include_stopped, live = self.flag("include_stopped_servers"), self.hub.servers
        with_state = auth_state or await self.can("admin:auth_state", user=name)

        found = await reader_for(self.hub).run(load_user, name, include_stopped, live)
        if found is None:
            raise bad(f"No such user {name[:80]}", 404)
        row, blob = found
        model = UserView(self.held).model(self.urls, row)
        if with_state:
            model["auth_state"] = self._auth_state(blob)
        self.write_json(model, status)

    @staticmethod
    def _auth_state(blob: bytes | None) -> Any:
        if not blob:
            return None
        try:
            from amalthea.auth.state_crypto import AuthStateCrypto

            return AuthStateCrypto.from_env().decrypt(blob)
        except Exception:  # no key configured or undecryptable: say nothing, as JupyterHub
            return None

    async def get(self, name: str) -> None:
        await self.need_any(READ_USER_SCOPES, user=name)
        await self._model(name)

    async def post(self, name: str) -> None:
        who = await self.need_any(["admin:users"], user=name)
        body = self.body_object({"admin"})
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise bad("admin must be true or false")
        if admin and not who.admin:
            raise bad("Only admins can grant admin permissions", 403)
        auth = self.hub.authenticator
        norm = auth.normalize_username(name)
        problem = auth.validate_username(norm)
        if problem or norm != name:
            raise bad(problem or f"Invalid username {name[:80]!r}: use {norm!r}")
        async with self.hub.db.session() as s:
            if await queries.user_by_name(s, name) is not None:
                raise bad(f"User {name} already exists", 409)
            await queries.create_user(s, name, admin)
            await s.commit()
        auth.allowed_users.add(name)
        await self._model(name, 201)

    async def patch(self, name: str) -> None:
        who = await self.need_any(["admin:users"], user=name)
        body = self.body_object({"name", "admin", "auth_state"}, required=True, empty_ok=False)
        if "name" in body and not isinstance(body["name"], str):
            raise bad("name must be a string")
        if "admin" in body and not isinstance(body["admin"], bool):
            raise bad("admin must be true or false")
        if "auth_state" in body and not isinstance(body["auth_state"], dict | None):
            raise bad("auth_state must be an object or null")
        new_name = body.get("name", name)
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                raise bad(f"No such user {name[:80]}", 404)
            if (user.admin or body.get("admin")) and not who.admin:
                raise bad("Only admins can modify admin users or grant admin permissions", 403)
            if new_name != name:
                auth = self.hub.authenticator
                problem = auth.validate_username(new_name)
                if problem or auth.normalize_username(new_name) != new_name:
                    raise bad(problem or f"Invalid username {new_name[:80]!r}")
                if await queries.user_by_name(s, new_name) is not None:
                    raise bad(f"User {new_name} already exists, username must be unique")
                if any(self.hub.servers.state_of(name, srv.name).active for srv in user.servers):
                    raise bad(f"Stop {name}'s servers before renaming the user")
                for srv in user.servers:
                    self.hub.servers.runtimes.pop((name, srv.name), None)
                user.name = new_name
            if "admin" in body:
                user.admin = body["admin"]
            if "auth_state" in body:
                user.encrypted_auth_state = self._encrypt(body["auth_state"])
            await s.commit()
        self.forget_permissions()
        await self._model(new_name, 200, auth_state=True)

    def _encrypt(self, state: dict[str, Any] | None) -> bytes | None:
        if state is None:
            return None
        try:
            from amalthea.auth.state_crypto import AuthStateCrypto

            return AuthStateCrypto.from_env().encrypt(state)
        except Exception as e:
            raise bad(f"auth_state cannot be stored: encryption is not configured ({e})") from e

    async def delete(self, name: str) -> None:
        who = await self.need_any(["delete:users"], user=name)
        if who.kind == "user" and who.name == name:
            raise bad("Cannot delete yourself!")
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                raise bad(f"No such user {name[:80]}", 404)
            server_names = [srv.name for srv in user.servers]
        manager = self.hub.servers
        stopping = [rt for n in server_names if (rt := await manager.stop(name, n)) is not None]
        done = await asyncio.gather(*(manager.wait(rt, 10.0) for rt in stopping))
        if not all(done):
            raise bad(f"User {name}'s server is in the process of stopping, try again later")
        async with self.hub.db.session() as s:
            await s.execute(delete(User).where(User.name == name))
            await s.commit()
        for n in server_names:
            manager.runtimes.pop((name, n), None)
        self.hub.authenticator.allowed_users.discard(name)
        self.forget_permissions()
        self.write_empty(204)


class AdminAccessHandler(RestHandler):
    async def post(self, name: str) -> None:
        await self.need_any(["servers"], user=name)
        raise bad("admin_access is not enabled: use scopes (access:servers) instead", 403)


handlers = [
    (r"/users", UserListHandler),
    (r"/users/([^/]+)", UserHandler),
    (r"/users/([^/]+)/admin-access", AdminAccessHandler),
]
