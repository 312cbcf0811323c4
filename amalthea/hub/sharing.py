"""Sharing a server with users and groups, and share codes (protocol §12). No HTTP here.

A Share grants scopes on exactly one server (always filtered ``!server=<owner>/<server>``) to a
user or a group; the scopes join the recipient's own (``rbac.resolve.shared_scopes``). A share
code is the same grant without a recipient: anyone logged in who presents it gets a Share.
Codes are stored as prefix + SHA-256 hash like tokens; only the creation answer shows them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from amalthea.hub import rbac
from amalthea.hub.clock import isoformat, utcnow
from amalthea.hub.security.tokens import hash_token
from amalthea.hub.store.models import Group, Server, Share, ShareCode, User

__all__ = ["ShareError", "ShareTarget", "exchange_code", "new_code", "normalize_scopes"]

#: scopes that mean something on one server (what a ``!server=`` filter can restrict)
SHAREABLE = frozenset({
    "access:servers", "read:servers", "start:servers", "delete:servers", "servers",
    "admin:servers", "admin:server_state", "read:shares", "shares",
})  # fmt: skip
CODE_EXPIRES_DEFAULT, CODE_EXPIRES_MIN, CODE_EXPIRES_MAX = 86400, 60, 31536000


class ShareError(ValueError):
    """Invalid share request; ``status`` is the HTTP answer the web layer gives."""

    def __init__(self, message: str, status: int = 400, missing: bool = False) -> None:
        super().__init__(message)
        self.status = status
        #: the request was well-formed but names a user/group that does not exist
        self.missing = missing


@dataclass
class ShareTarget:
    owner: User
    server: Server

    @property
    def filter(self) -> str:
        return f"server={self.owner.name}/{self.server.name}"

    @property
    def default_scopes(self) -> list[str]:
        return [f"access:servers!{self.filter}"]


async def target(s: AsyncSession, owner: str, server: str) -> ShareTarget:
    user = (await s.execute(select(User).where(User.name == owner))).scalar()
    if user is None:
        raise ShareError(f"No such user {owner[:80]}", 404)
    srv = next((x for x in user.servers if x.name == server), None)
    if srv is None:
        raise ShareError(f"No such server {owner[:80]}/{server[:40]}", 404)
    return ShareTarget(user, srv)


def normalize_scopes(t: ShareTarget, scopes: Any) -> list[str]:
    """Validate requested share scopes; add this server's filter; refuse other filters."""
    if scopes is None:
        return t.default_scopes
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes) or not scopes:
        raise ShareError("scopes must be a non-empty list of strings")
    out = []
    for text in scopes:
        try:
            scope = rbac.validate(text)
        except rbac.ScopeError as e:
            raise ShareError(str(e)) from None
        if scope.base not in SHAREABLE and not scope.base.startswith("custom:"):
            raise ShareError(
                f"Scope {text!r} cannot be shared: only server scopes ({', '.join(sorted(SHAREABLE))})"
            )
        if scope.kind and f"{scope.kind}={scope.value}" != t.filter:
            raise ShareError(f"Share scopes must be for this server (!{t.filter}), not {text!r}")
        out.append(f"{scope.base}!{t.filter}")
    return sorted(set(out))


def server_model(
    owner: str, srv: Server, base_url: str, public_url: str, ready: bool
) -> dict[str, Any]:
    from amalthea.hub.web.api.views import Urls

    urls = Urls(base_url, public_url)
    url = urls.server(owner, srv.name)
    return {"user": {"name": owner}, "name": srv.name, "url": url, "full_url": urls.full(url),
            "ready": ready}  # fmt: skip


def new_code() -> str:
    return secrets.token_urlsafe(32)


def code_fields(code: str) -> dict[str, str]:
    return {"prefix": code[:4], "hashed": hash_token(code)}


def check_expires_in(value: Any) -> int:
    if value is None:
        return CODE_EXPIRES_DEFAULT
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ShareError("expires_in must be a number of seconds")
    if not CODE_EXPIRES_MIN <= value <= CODE_EXPIRES_MAX:
        raise ShareError(
            f"expires_in must be between {CODE_EXPIRES_MIN} and {CODE_EXPIRES_MAX} seconds, "
            f"not {value}"
        )
    return int(value)


async def grant(
    s: AsyncSession, t: ShareTarget, scopes: list[str], user_id: int | None, group_id: int | None
) -> Share:
    """Create the share or extend an existing one with more scopes."""
    cond = Share.user_id == user_id if user_id is not None else Share.group_id == group_id
    share = (await s.execute(select(Share).where(Share.server_id == t.server.id, cond))).scalar()
    if share is None:
        share = Share(owner_id=t.owner.id, server_id=t.server.id, user_id=user_id,
                      group_id=group_id, scopes=scopes, created_at=utcnow())  # fmt: skip
        s.add(share)
    else:
        share.scopes = sorted(set(share.scopes or []) | set(scopes))
    await s.flush()
    return share


async def find_code(s: AsyncSession, code: str) -> ShareCode | None:
    if not isinstance(code, str) or not 8 <= len(code) <= 100:
        return None
    now = utcnow()
    return (
        await s.execute(
            select(ShareCode).where(
                ShareCode.prefix == code[:4],
                ShareCode.hashed == hash_token(code),
                or_(ShareCode.expires_at.is_(None), ShareCode.expires_at > now),
            )
        )
    ).scalar()


async def exchange_code(s: AsyncSession, code: str, user: User) -> tuple[Share, ShareCode]:
    """A user accepts a share code: grant (or extend) their Share; count the exchange."""
    row = await find_code(s, code)
    if row is None:
        raise ShareError("Share not found or expired", 404)
    if row.owner_id == user.id:
        raise ShareError("You cannot accept your own share code", 403)
    owner = await s.get(User, row.owner_id)
    srv = await s.get(Server, row.server_id)
    assert owner is not None and srv is not None
    share = await grant(s, ShareTarget(owner, srv), list(row.scopes or []), user.id, None)
    row.exchange_count = (row.exchange_count or 0) + 1
    row.last_exchanged_at = utcnow()
    return share, row


def code_model(row: ShareCode, server: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": server, "scopes": list(row.scopes or []), "id": f"sc_{row.id}",
        "created_at": isoformat(row.created_at), "expires_at": isoformat(row.expires_at),
        "exchange_count": row.exchange_count or 0,
        "last_exchanged_at": isoformat(row.last_exchanged_at),
    }  # fmt: skip


def code_expiry(seconds: int) -> Any:
    return utcnow() + timedelta(seconds=seconds)


async def recipient(s: AsyncSession, body: dict[str, Any]) -> tuple[int | None, int | None, str]:
    """(user id, group id, description) from a ``{"user": n}`` xor ``{"group": n}`` body."""
    has_user, has_group = "user" in body, "group" in body
    if has_user == has_group:
        raise ShareError("Specify exactly one of 'user' or 'group'")
    key = "user" if has_user else "group"
    name = body[key]
    if not isinstance(name, str) or not name:
        raise ShareError(f"{key} must be a name (string)")
    model = User if has_user else Group
    found = (await s.execute(select(model.id).where(model.name == name))).scalar()
    if found is None:
        raise ShareError(f"No such {key}: {name[:80]}", missing=True)
    return (found, None, name) if has_user else (None, found, name)
