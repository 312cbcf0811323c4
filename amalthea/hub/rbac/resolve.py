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

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from amalthea.hub.clock import utcnow
from amalthea.hub.rbac import effective as E
from amalthea.hub.rbac import scopes as S
from amalthea.hub.rbac.effective import DEFAULT_ROLES
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
    admin = E.holds_admin(user.admin, (r.name for r in user.roles))
    return E.user_raw_scopes(
        await role_scopes(session, "user"), await role_scopes(session, "admin") if admin else (),
        [(r.name, r.scopes) for r in user.roles], [r.scopes for g in user.groups for r in g.roles],
        await shared_scopes(session, user.id, [g.id for g in user.groups]),
    )  # fmt: skip


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


async def _client_description(session: AsyncSession, client_id: str) -> str | None:
    if not E.needs_client_description(client_id):
        return None
    return (
        await session.execute(
            select(OAuthClient.description).where(OAuthClient.identifier == client_id)
        )
    ).scalar()


def _owner(token: APIToken) -> S.Subject | None:
    if token.user is not None:
        return S.Subject("user", token.user.name, tuple(g.name for g in token.user.groups))
    if token.service is not None:
        return S.Subject("service", token.service.name)
    return None


async def subject_for_token(session: AsyncSession, token: APIToken) -> S.Subject | None:
    """The Subject of a token's owner, with the issuing client's server/service for bare
    ``!server`` / ``!service`` filters."""
    owner = _owner(token)
    if owner is None:
        return None
    client_id = token.client_id or ""
    desc = await _client_description(session, client_id)
    return E.token_subject(token.note, client_id, desc, owner)


async def token_scopes(session: AsyncSession, token: APIToken) -> frozenset[str]:
    """Effective expanded scopes of a token: its own ∩ its owner's current ones."""
    who = _owner(token)
    if who is None:
        return frozenset()
    if token.user is not None:
        owner = await user_scopes(session, token.user)
    else:
        assert token.service is not None
        owner = await service_scopes(session, token.service)
    client_id = token.client_id or ""
    desc = await _client_description(session, client_id)
    subject = E.token_subject(token.note, client_id, desc, who)
    mine = E.token_own_scopes(token.scopes, client_id, desc, subject)
    if mine is None:  # inherit
        return owner
    names = E.groups_needed(mine, owner)
    groups_of = None if names is None else await groups_of_users(session, names)
    return S.intersect(mine, owner, groups_of)
