"""Queries the hub core runs often, as small async functions over an AsyncSession.

The REST API helpers may add their own modules next to this one; these are the ones the login,
token and lifecycle code share.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from amalthea.hub.clock import utcnow
from amalthea.hub.security.tokens import hash_token, new_token, token_prefix
from amalthea.hub.store.models import APIToken, LoginSession, OAuthClient, Server, User

HUB_CLIENT_ID = "jupyterhub"


async def user_by_name(s: AsyncSession, name: str) -> User | None:
    return (await s.execute(select(User).where(User.name == name))).scalar()


async def user_exists(s: AsyncSession, name: str) -> bool:
    return (await s.execute(select(User.id).where(User.name == name))).first() is not None


async def create_user(s: AsyncSession, name: str, admin: bool = False) -> User:
    user = User(name=name, admin=admin, cookie_id=uuid.uuid4().hex, created=utcnow())
    user.servers = [Server(name="", state="stopped")]
    s.add(user)
    await s.flush()
    return user


#: built once: a prebuilt statement's cache key is memoized, so executing it skips the
#: per-call statement construction and cache-key walk (a third of a small query's CPU)
_USER_ROW = select(User).where(User.name == bindparam("name")).options(raiseload("*"))


async def create_users(s: AsyncSession, names: list[str], admin: bool = False) -> list[int]:
    """Create many users (``POST /users``) with two multi-row INSERTs (users, their default
    servers) instead of two per user; returns the new ids in the order of ``names``. The
    caller has checked that none of the names exists."""
    if not names:
        return []
    now = utcnow()
    rows = [{"name": n, "admin": admin, "cookie_id": uuid.uuid4().hex, "created": now}
            for n in names]  # fmt: skip
    returning = insert(User).returning(User.id, sort_by_parameter_order=True)
    ids = list((await s.execute(returning, rows)).scalars())
    await s.execute(insert(Server), [{"user_id": i, "name": "", "state": "stopped"} for i in ids])
    return ids


async def get_or_create_user(s: AsyncSession, name: str, admin: bool | None = None) -> User:
    """The user's row, created if missing. Relationships are not loaded (touching one raises):
    every caller needs only columns, and ``user_by_name``'s eager loads (groups with all their
    members, roles, servers) are most of a login's database work."""
    user = (await s.execute(_USER_ROW, {"name": name})).scalar()
    if user is None:
        user = await create_user(s, name, bool(admin))
    elif admin is not None and user.admin != admin:
        user.admin = admin
    return user


async def ensure_hub_client(s: AsyncSession) -> None:
    """The 'jupyterhub' OAuth client issues plain API tokens; it must always exist."""
    if (
        await s.execute(select(OAuthClient.id).where(OAuthClient.identifier == HUB_CLIENT_ID))
    ).first():
        return
    s.add(OAuthClient(identifier=HUB_CLIENT_ID, description="JupyterHub", secret=""))
    await s.flush()


async def create_token(
    s: AsyncSession,
    *,
    user_id: int | None = None,
    service_id: int | None = None,
    note: str = "",
    scopes: list[str] | None = None,
    expires_in: float | None = None,
    client_id: str = HUB_CLIENT_ID,
    session_id: str | None = None,
) -> tuple[str, APIToken]:
    """Mint a token; returns (secret shown once, row)."""
    token = new_token()
    now = utcnow()
    row = APIToken(
        user_id=user_id,
        service_id=service_id,
        hashed=hash_token(token),
        prefix=token_prefix(token),
        client_id=client_id,
        session_id=session_id,
        created=now,
        expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
        note=note,
        scopes=scopes if scopes is not None else ["inherit"],
    )
    s.add(row)
    await s.flush()
    return token, row


async def end_session(s: AsyncSession, session_id: str) -> list[str]:
    """Delete the session and the OAuth tokens issued in it; returns the deleted token hashes."""
    hashes = list(
        (
            await s.execute(select(APIToken.hashed).where(APIToken.session_id == session_id))
        ).scalars()
    )
    await s.execute(delete(APIToken).where(APIToken.session_id == session_id))
    await s.execute(delete(LoginSession).where(LoginSession.id == session_id))
    return hashes


def bump(old: datetime | None, new: datetime) -> datetime:
    """Activity only moves forward."""
    return new if old is None or new > old else old
