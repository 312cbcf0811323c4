"""JSON models of users, servers, groups, services, tokens and shares (protocol §5.1, §12).

Models are *vertically filtered*: a key appears only if the caller's scopes reveal it for that
object. List endpoints build many models per request, so this module reads in batches with
SQLAlchemy Core (one query per table for the whole page, never one per user). The user and
server models themselves are built in ``web/user_model.py`` (no SQL there, so a starting hub's
early API uses the same code before SQLAlchemy is imported).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from amalthea.hub import rbac
from amalthea.hub.clock import isoformat
from amalthea.hub.store.models import (
    APIToken,
    Group,
    OAuthClient,
    Role,
    Server,
    User,
    group_role_map,
    user_group_map,
    user_role_map,
)
from amalthea.hub.store.prepared import PreparedSelect
from amalthea.hub.web.user_model import ACTIVE, ServerInfo, Urls, UserRow, UserView, server_model

__all__ = [
    "ACTIVE", "ServerInfo", "Urls", "UserRow", "UserView", "load_user", "load_users", "server_model",
    "token_model",
]  # fmt: skip

_USER_COLS = (User.id, User.name, User.admin, User.created, User.last_activity, User.user_info)
_IDS: Any = bindparam("ids", expanding=True)
_LO: Any = bindparam("lo")
_HI: Any = bindparam("hi")
_USERS_BY_ID = select(*_USER_COLS).where(User.id.in_(_IDS))


def _related(cols: tuple[Any, ...], user_col: Any, *joins: tuple[Any, Any],
             order: Any = None) -> tuple[Select[Any], Select[Any]]:  # fmt: skip
    """The same related-table query twice: for an id range and for an id list. Built once at
    import, so requests skip statement construction and cache-key generation."""
    base = select(*cols)
    for target, on in joins:
        base = base.join(target, on)
    if order is not None:
        base = base.order_by(order)
    return base.where(user_col.between(_LO, _HI)), base.where(user_col.in_(_IDS))


_GROUPS = _related((user_group_map.c.user_id, Group.name), user_group_map.c.user_id,
                   (Group, Group.id == user_group_map.c.group_id), order=Group.name)  # fmt: skip
_ROLES = _related((user_role_map.c.user_id, Role.name), user_role_map.c.user_id,
                  (Role, Role.id == user_role_map.c.role_id))  # fmt: skip
_SERVER_COLS = (Server.user_id, Server.name, Server.display_name, Server.state, Server.started,
                Server.last_activity, Server.user_options, Server.spawner_state)  # fmt: skip
_SERVERS = _related(_SERVER_COLS, Server.user_id)


def load_users(
    conn: Connection,
    user_ids: Sequence[int] | Select[Any],
    include_stopped: bool = False,
    live: Any = None,
    want_groups: bool = True,
    want_roles: bool = True,
    want_servers: bool = True,
    id_ordered: bool = False,
) -> list[UserRow]:
    """Batched load on a *sync* connection (run it through ``store.reads.Reader``): users,
    groups, roles and servers in at most four queries, in order.

    ``user_ids`` is a list of ids or a ``select(User.id)`` page query (filters, ORDER BY,
    OFFSET/LIMIT), selected once with the user columns. Related rows are then read by id: with
    ``id_ordered`` (the page is sorted by id) as one ``BETWEEN first AND last`` range (rows of
    users filtered out of the page are skipped here), else with an ``IN`` list.
    ``live`` (the ServerManager) overrides the DB's server state with the in-memory one, which
    is authoritative while a transition is in progress.
    """
    if isinstance(user_ids, Select):
        rows = conn.execute(user_ids.with_only_columns(*_USER_COLS)).all()
    else:
        if not user_ids:
            return []
        rows = list(conn.execute(_USERS_BY_ID, {"ids": list(user_ids)}).all())
        order = {uid: i for i, uid in enumerate(user_ids)}
        rows.sort(key=lambda r: order[r[0]])
        id_ordered = False
    if not rows:
        return []
    by_id = {r[0]: UserRow(r[0], r[1], r[2], r[3], r[4], r[5], [], [], {}) for r in rows}
    if id_ordered:
        which, params = 0, {"lo": min(by_id), "hi": max(by_id)}
    else:
        which, params = 1, {"ids": list(by_id)}
    if want_groups:
        for uid, gname in conn.execute(_GROUPS[which], params):
            if uid in by_id:
                by_id[uid].groups.append(gname)
    if want_roles:
        for uid, rname in conn.execute(_ROLES[which], params):
            if uid in by_id:
                by_id[uid].roles.append(rname)
        for row in by_id.values():
            implicit = ("user", "admin") if row.admin else ("user",)
            row.roles = sorted(set(row.roles).union(implicit))
    if want_servers:
        for uid, *server in conn.execute(_SERVERS[which], params):
            owner = by_id.get(uid)
            if owner is not None:
                _add_server(owner, server, include_stopped, live)
    return list(by_id.values())


def _add_server(owner: UserRow, row: Sequence[Any], include_stopped: bool, live: Any) -> None:
    """One servers row (``_SERVER_COLS`` without user_id); live state wins over the DB's."""
    name, display, state, started, last, options, sstate = row
    if live is not None:
        rt = live.get(owner.name, name)
        if rt is not None:
            state = rt.state.value
    if include_stopped or state in ACTIVE:
        owner.servers[name] = ServerInfo(name, display, state, started, last, options, sstate)


_UID: Any = bindparam("uid")
_ONE_USER = PreparedSelect(
    select(*_USER_COLS, User.encrypted_auth_state).where(User.name == bindparam("name"))
)
_ONE_GROUPS = PreparedSelect(select(Group.name).join(user_group_map, Group.id == user_group_map.c.group_id)
                             .where(user_group_map.c.user_id == _UID).order_by(Group.name))  # fmt: skip
_ONE_ROLES = PreparedSelect(select(Role.name).join(user_role_map, Role.id == user_role_map.c.role_id)
                            .where(user_role_map.c.user_id == _UID))  # fmt: skip
_ONE_SERVERS = PreparedSelect(select(*_SERVER_COLS[1:]).where(Server.user_id == _UID))


def load_user(
    conn: Connection, name: str, include_stopped: bool = False, live: Any = None
) -> tuple[UserRow, bytes | None] | None:
    """One user by name, as ``load_users`` builds it, plus the encrypted auth_state; None if
    there is no such user. For the per-user endpoints: four prepared statements by key
    (store/prepared.py), a fraction of the CPU of ``load_users``' generic batch queries."""
    found = _ONE_USER.first(conn, name=name)
    if found is None:
        return None
    uid, name, admin, created, last_activity, user_info, auth_state = found
    groups = [g for (g,) in _ONE_GROUPS.all(conn, uid=uid)]
    user = UserRow(uid, name, admin, created, last_activity, user_info, groups, [], {})
    roles = {r for (r,) in _ONE_ROLES.all(conn, uid=uid)}
    user.roles = sorted(roles.union(("user", "admin") if admin else ("user",)))
    for server in _ONE_SERVERS.all(conn, uid=uid):
        _add_server(user, server, include_stopped, live)
    return user, auth_state


def group_model(held: frozenset[str], name: str, users: list[str], properties: dict[str, Any],
                roles: list[str]) -> dict[str, Any]:  # fmt: skip
    model: dict[str, Any] = {"kind": "group", "name": name}
    if rbac.covers(held, "read:groups", group=name):
        model["users"] = users
        model["properties"] = properties or {}
    if rbac.covers(held, "read:roles:groups", group=name):
        model["roles"] = roles
    return model


async def load_groups(
    session: AsyncSession, group_ids: Sequence[int]
) -> list[tuple[Any, list[str], list[str]]]:
    """(group row, member names, role names) for each id, in order, in three queries."""
    if not group_ids:
        return []
    ids = list(group_ids)
    groups = {
        g.id: g
        for g in (
            await session.execute(
                select(Group.id, Group.name, Group.properties).where(Group.id.in_(ids))
            )
        )
    }
    members: dict[int, list[str]] = {i: [] for i in ids}
    for gid, uname in await session.execute(
        select(user_group_map.c.group_id, User.name)
        .join(User, User.id == user_group_map.c.user_id)
        .where(user_group_map.c.group_id.in_(ids))
        .order_by(User.name)
    ):
        members[gid].append(uname)
    roles: dict[int, list[str]] = {i: [] for i in ids}
    for gid, rname in await session.execute(
        select(group_role_map.c.group_id, Role.name)
        .join(Role, Role.id == group_role_map.c.role_id)
        .where(group_role_map.c.group_id.in_(ids))
    ):
        roles[gid].append(rname)
    return [(groups[i], members[i], sorted(roles[i])) for i in ids if i in groups]


def token_model(
    tok: APIToken, owner_kind: str, owner: str, scopes: Iterable[str], client: OAuthClient | None
) -> dict[str, Any]:
    model: dict[str, Any] = {
        owner_kind: owner,
        "id": f"a{tok.id}",
        "kind": "api_token",
        "roles": [],
        "scopes": sorted(scopes),
        "created": isoformat(tok.created),
        "last_activity": isoformat(tok.last_activity),
        "expires_at": isoformat(tok.expires_at),
        "note": tok.note or "",
        "session_id": tok.session_id,
        "oauth_client": (client.description or client.identifier) if client else "JupyterHub",
    }
    return model
