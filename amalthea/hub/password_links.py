"""One-time "set your password" links for accounts of the ``local`` authenticator.

An admin adds a user (the user row exists, the local account may not) and asks for a link; the
person opens it and chooses a password. Invariants: only the SHA-256 of the code is stored, a
link works once and until ``expires_at``, and a new link replaces the user's older ones (the
admin sent the newest; older copies lying in mailboxes should not keep working). Redeeming also
clears a lockout: the admin vouched for the person.

Rejected: a random password mailed by the admin (it lives on in chat logs and is rarely changed),
and in-memory codes like the first-run setup link (a hub restart would silently kill a link that
promises 24 hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from amalthea.hub.clock import utcnow
from amalthea.hub.security.tokens import hash_token, new_code
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import PasswordLink, User

__all__ = ["LINK_LIFETIME", "Issued", "issue", "peek", "redeem"]

LINK_LIFETIME = timedelta(hours=24)


@dataclass
class Issued:
    code: str
    expires_at: datetime


async def issue(db: Database, user_id: int, lifetime: timedelta = LINK_LIFETIME) -> Issued:
    """A new code for the user; earlier links of that user stop working."""
    code, now = new_code(), utcnow()
    async with db.session() as s:
        await s.execute(delete(PasswordLink).where(PasswordLink.user_id == user_id))
        await s.execute(delete(PasswordLink).where(PasswordLink.expires_at < now))
        s.add(PasswordLink(user_id=user_id, hashed=hash_token(code), created=now,
                           expires_at=now + lifetime))  # fmt: skip
        await s.commit()
    return Issued(code, now + lifetime)


async def peek(db: Database, code: str) -> str | None:
    """The username the code is for, or None when unknown or expired. Does not use it up."""
    if not code or len(code) > 200:
        return None
    async with db.session() as s:
        row = (
            await s.execute(
                select(User.name)
                .join(PasswordLink, PasswordLink.user_id == User.id)
                .where(PasswordLink.hashed == hash_token(code), PasswordLink.expires_at > utcnow())
            )
        ).first()
    return row[0] if row else None


async def redeem(db: Database, code: str) -> bool:
    """Use the code up; False when someone else used it first (two tabs, a replay)."""
    async with db.session() as s:
        result = await s.execute(
            delete(PasswordLink).where(PasswordLink.hashed == hash_token(code))
        )
        await s.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
