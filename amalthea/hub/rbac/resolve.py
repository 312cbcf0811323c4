"""Database-backed scope resolution: what a user, service or token may do right now.

- A user holds the ``user`` role (implicitly, every user), the roles assigned to them, the roles
  of their groups, ``admin`` if flagged admin, and the scopes of unexpired shares granted to
  them or to one of their groups (protocol §4.3, §12).
- A service holds its roles (and ``admin`` if flagged); there is no default service role.
- A token holds (its expanded scopes + identify scopes + for OAuth tokens the client's access
  scope) ∩ its owner's current scopes; ``inherit`` = the owner's scopes (protocol §3.5).

Everything is read fresh from the database, so role/group/share changes apply on the next
resolution; callers (``security.identity``) cache results for a few seconds per token.
Role scope lists are cached in-process for ``ROLE_TTL`` seconds because the same three or four
roles are read by every request; :func:`forget_roles` drops that cache after role edits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import unquote

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from amalthea.hub.clock import utcnow
from amalthea.hub.rbac import scopes as S
from amalthea.hub.rbac.roles import DEFAULT_ROLES
from amalthea.hub.store.models import (
    APIToken,
    Group,
    OAuthClient,
    Role,
    Service,
    Share,
    User,
    user_group_map,
)

__all__ = [
    "forget_roles",
    "groups_of_users",
    "service_scopes",
    "subject_for_token",
    "token_scopes",
    "user_scopes",
]

ROLE_TTL = 5.0
_role_cache: dict[str, tuple[float, tuple[str, ...]]] = {}


def forget_roles() -> None:
    _role_cache.clear()


async def role_scopes(session: AsyncSession, name: str) -> tuple[str, ...]:
    """Scopes of a role by name (DB first; the built-in default if the row is missing)."""
    hit = _role_cache.get(name)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    found = (await session.execute(select(Role.scopes).where(Role.name == name))).scalar()
    if found is None:
        found = DEFAULT_ROLES.get(name, {}).get("scopes", [])
    result = tuple(found or ())
    _role_cache[name] = (now + ROLE_TTL, result)
    return result


async def shared_scopes(session: AsyncSession, user_id: int, group_ids: Iterable[int]) -> list[str]:
    """Scopes of unexpired shares granted to the user or their groups."""
    gids = list(group_ids)
    cond = Share.user_id == user_id
    if gids:
        cond = or_(cond, Share.group_id.in_(gids))
    now = utcnow()
    rows = await session.execute(
        select(Share.scopes).where(cond, or_(Share.expires_at.is_(None), Share.expires_at > now))
    )
    return [s for (scopes,) in rows for s in (scopes or [])]


async def user_raw_scopes(session: AsyncSession, user: User) -> list[str]:
    raw: list[str] = list(await role_scopes(session, "user"))
    if user.admin or any(r.name == "admin" for r in user.roles):
        raw.extend(await role_scopes(session, "admin"))
    for role in user.roles:
        if role.name not in ("user", "admin"):
            raw.extend(role.scopes or ())
    for group in user.groups:
        for role in group.roles:
            raw.extend(role.scopes or ())
    raw.extend(await shared_scopes(session, user.id, [g.id for g in user.groups]))
    return raw


async def user_scopes(session: AsyncSession, user: User) -> frozenset[str]:
    """Expanded scopes of a user (roles, group roles, shares)."""
    raw = await user_raw_scopes(session, user)
    subject = S.Subject("user", user.name, tuple(g.name for g in user.groups))
    return S.expand(raw, subject)


async def service_scopes(session: AsyncSession, service: Service) -> frozenset[str]:
    raw: list[str] = []
    if service.admin:
        raw.extend(await role_scopes(session, "admin"))
    for role in service.roles:
        raw.extend(role.scopes or ())
    return S.expand(raw, S.Subject("service", service.name))


async def groups_of_users(session: AsyncSession, names: Iterable[str]) -> dict[str, list[str]]:
    """{user name: [group names]} for the named users, in one query."""
    wanted = list(set(names))
    if not wanted:
        return {}
    rows = await session.execute(
        select(User.name, Group.name)
        .join(user_group_map, user_group_map.c.user_id == User.id)
        .join(Group, Group.id == user_group_map.c.group_id)
        .where(User.name.in_(wanted))
    )
    out: dict[str, list[str]] = {}
    for uname, gname in rows:
        out.setdefault(uname, []).append(gname)
    return out


def _server_from_base_url(text: str) -> str | None:
    """``Server at /user/alice/gpu/`` (or the bare path) → ``alice/gpu``."""
    path = text.removeprefix("Server at ").strip()
    marker = "/user/"
    idx = path.find(marker)
    if idx < 0:
        return None
    parts = path[idx + len(marker) :].strip("/").split("/")
    if not parts or not parts[0]:
        return None
    name = unquote(parts[0])
    server = unquote(parts[1]) if len(parts) > 1 else ""
    return f"{name}/{server}"


async def subject_for_token(session: AsyncSession, token: APIToken) -> S.Subject | None:
    """The Subject of a token's owner, with the issuing client's server/service for bare
    ``!server`` / ``!service`` filters."""
    server: str | None = None
    service: str | None = None
    if token.note.startswith("Server at "):
        server = _server_from_base_url(token.note)
    client_id = token.client_id or ""
    if client_id.startswith("service-"):
        service = client_id.removeprefix("service-")
    elif client_id.startswith("jupyterhub-user-") and server is None:
        desc = (
            await session.execute(
                select(OAuthClient.description).where(OAuthClient.identifier == client_id)
            )
        ).scalar()
        server = _server_from_base_url(desc or "")
    if token.user is not None:
        groups = tuple(g.name for g in token.user.groups)
        return S.Subject("user", token.user.name, groups, server=server, service=service)
    if token.service is not None:
        return S.Subject("service", token.service.name, server=server, service=service)
    return None


async def _client_access_scopes(session: AsyncSession, client_id: str) -> list[str]:
    """The access scope an OAuth token always carries for its own client (protocol §8.4)."""
    if not client_id or client_id == "jupyterhub":
        return []
    if client_id.startswith("service-"):
        return [f"access:services!service={client_id.removeprefix('service-')}"]
    desc = (
        await session.execute(
            select(OAuthClient.description).where(OAuthClient.identifier == client_id)
        )
    ).scalar()
    server = _server_from_base_url(desc or "")
    return [f"access:servers!server={server}"] if server else []


async def token_scopes(session: AsyncSession, token: APIToken) -> frozenset[str]:
    """Effective expanded scopes of a token: its own ∩ its owner's current ones."""
    subject = await subject_for_token(session, token)
    if subject is None:
        return frozenset()
    if token.user is not None:
        owner = await user_scopes(session, token.user)
    else:
        assert token.service is not None
        owner = await service_scopes(session, token.service)
    raw = list(token.scopes or [])
    if "inherit" in raw:
        return owner
    raw.extend(await _client_access_scopes(session, token.client_id or ""))
    mine = S.expand(raw, subject) | S.identify_scopes(subject)
    groups_of = None
    if S.has_group_filters(mine) or S.has_group_filters(owner):
        groups_of = await groups_of_users(session, S.users_named(mine | owner))
    return S.intersect(mine, owner, groups_of)
