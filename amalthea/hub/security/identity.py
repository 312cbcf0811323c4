"""Who is asking: resolve an API token or a login session to an :class:`Identity`.

Resolution costs a few queries (token row, owner, roles, groups), and clients repeat the same
token many times a second, so results are cached in memory for ``ttl`` seconds keyed by the
token hash / session id. Anything that changes permissions (logout, token revoke, role change)
calls :meth:`IdentityResolver.forget` or :meth:`forget_all`; other changes show up within ttl.

Revocation never waits for the ttl: a cached identity is used only after one indexed lookup
says its token (or session) row still exists and has not expired (~20 µs on SQLite's read
connection). So a revoked or expired token, a deleted user or service (their tokens and
sessions go with them, ``ON DELETE CASCADE``), a server's token deleted when it stops and a
logged-out session are refused on the next request, whichever code path or process removed
the row. Only scope changes (roles, groups, shares) rely on ``forget``/ttl.

Scopes come from ``amalthea.hub.rbac.resolve`` when that module exists (the RBAC owner's full
implementation); until then a built-in default applies: every user holds ``self``, admins also
the ``admin`` role's scopes, plus scopes of roles assigned in the database.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from amalthea.hub import rbac
from amalthea.hub.clock import utcnow
from amalthea.hub.security.tokens import hash_token, plausible
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import APIToken, LoginSession, User
from amalthea.hub.store.prepared import PreparedSelect
from amalthea.hub.store.reads import Reader

log = logging.getLogger("amalthea.identity")

__all__ = ["ADMIN_SCOPES", "Identity", "IdentityResolver", "identify_scopes"]

ADMIN_SCOPES = (
    "admin-ui", "admin:users", "admin:servers", "admin:services", "tokens", "admin:groups",
    "list:services", "read:services", "read:hub", "proxy", "shutdown", "access:services",
    "access:servers", "read:roles", "read:metrics", "shares",
)  # fmt: skip


_TOKEN_ALIVE = PreparedSelect(
    select(APIToken.expires_at).where(APIToken.hashed == bindparam("hashed"))
)
_SESSION_ALIVE = PreparedSelect(
    select(LoginSession.expires_at).where(LoginSession.id == bindparam("sid"))
)


def identify_scopes(name: str) -> list[str]:
    """Scopes every identity has on itself, so it can always read its own name and groups."""
    return [f"read:users:name!user={name}", f"read:users:groups!user={name}"]


@dataclass
class Identity:
    kind: str  # "user" | "service"
    name: str
    id: int
    admin: bool = False
    groups: tuple[str, ...] = ()
    user_info: dict[str, Any] | None = None
    last_activity: datetime | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_id: int | None = None
    token_note: str = ""
    session_id: str | None = None
    via: str = "token"  # "token" | "cookie"

    @property
    def subject(self) -> rbac.Subject:
        return rbac.Subject(self.kind, self.name, self.groups)

    def can(self, scope: str, **resource: Any) -> bool:
        return rbac.covers(self.scopes, scope, **resource)


def _resolve_module() -> Any:
    try:
        return importlib.import_module("amalthea.hub.rbac.resolve")
    except ImportError:
        return None


def _split(scope: str) -> tuple[str, str | None, str | None]:
    base, _, filt = scope.partition("!")
    if not filt:
        return base, None, None
    kind, _, value = filt.partition("=")
    return base, kind, value


def intersect(requested: Iterable[str], held: frozenset[str]) -> frozenset[str]:
    """Scopes of ``requested`` that ``held`` covers; an unfiltered request held only with
    filters keeps those filtered copies."""
    out: set[str] = set()
    for scope in requested:
        base, kind, value = _split(scope)
        if kind is None:
            out.update(s for s in held if s == base or s.startswith(base + "!"))
        elif value is not None and rbac.covers(held, base, **{kind: value}):
            out.add(scope)
    return frozenset(out)


async def user_scopes(session: AsyncSession, user: User) -> frozenset[str]:
    mod = _resolve_module()
    if mod is not None and hasattr(mod, "user_scopes"):
        return frozenset(await mod.user_scopes(session, user))
    raw: list[str] = ["self"]
    if user.admin:
        raw.extend(ADMIN_SCOPES)
    for role in user.roles:
        raw.extend(role.scopes)
    for group in user.groups:
        for role in group.roles:
            raw.extend(role.scopes)
    subject = rbac.Subject("user", user.name, tuple(g.name for g in user.groups))
    return rbac.expand(raw, subject)


async def token_scopes(session: AsyncSession, token: APIToken) -> frozenset[str]:
    mod = _resolve_module()
    if mod is not None and hasattr(mod, "token_scopes"):
        return frozenset(await mod.token_scopes(session, token))
    if token.user is None:  # service tokens: role scopes only (services get no default role)
        raw = [s for r in (token.service.roles if token.service else []) for s in r.scopes]
        return rbac.expand(
            raw, rbac.Subject("service", token.service.name if token.service else "")
        )
    held = await user_scopes(session, token.user)
    if "inherit" in token.scopes:
        return held
    subject = rbac.Subject("user", token.user.name, tuple(g.name for g in token.user.groups))
    return intersect(rbac.expand(token.scopes, subject), held)


class IdentityResolver:
    """Token/session -> Identity with a short in-memory cache."""

    def __init__(self, db: Database, ttl: float = 5.0, max_entries: int = 50_000) -> None:
        self.db = db
        self._reader: Reader | None = None
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self.activity_resolution = 30.0
        self._touched: dict[tuple[str, int, int | None], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: async callables run for every cookie identity (cached or not); one returning False
        #: logs that session out. Used by hub/logins.py for Authenticator.refresh_user.
        self.session_checks: list[Callable[[Identity], Awaitable[bool]]] = []

    def _get(self, key: str) -> tuple[bool, Identity | None]:
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def _put(self, key: str, ident: Identity | None) -> None:
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self.ttl, ident)

    def touch(self, ident: Identity) -> None:
        """Record that ``ident`` was used (at most once per ``activity_resolution`` s)."""
        key = (ident.kind, ident.id, ident.token_id)
        now = time.monotonic()
        if now - self._touched.get(key, -1e9) < self.activity_resolution:
            return
        self._touched[key] = now
        if len(self._touched) > self.max_entries:
            self._touched.clear()
        task = asyncio.get_running_loop().create_task(self._record(ident))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, ident: Identity) -> None:
        now = utcnow()
        try:
            async with self.db.session() as s:
                if ident.token_id is not None:
                    await s.execute(
                        update(APIToken)
                        .where(APIToken.id == ident.token_id)
                        .values(last_activity=now)
                    )
                if ident.kind == "user" and not ident.token_note.startswith("Server at "):
                    await s.execute(
                        update(User)
                        .where(User.id == ident.id)
                        .where((User.last_activity.is_(None)) | (User.last_activity < now))
                        .values(last_activity=now)
                    )
                await s.commit()
        except Exception:  # activity is best effort; never fail a request over it
            log.exception("recording activity of %s %s", ident.kind, ident.name)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._reader is not None:
            self._reader.dispose()
            self._reader = None

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)

    def forget_all(self) -> None:
        self._cache.clear()

    async def _alive(self, stmt: PreparedSelect, **key: str) -> bool:
        """Does the token/session row still exist, unexpired? (see the module docstring)"""
        if self._reader is None:
            self._reader = Reader(self.db.url)
        row = await self._reader.run(lambda conn: stmt.first(conn, **key))
        return row is not None and (row[0] is None or row[0] > utcnow())

    async def from_token(self, token: str) -> Identity | None:
        if not plausible(token):
            return None
        hashed = hash_token(token)
        found, ident = self._get(hashed)
        if found:
            if ident is None or await self._alive(_TOKEN_ALIVE, hashed=hashed):
                return ident
            self.forget(hashed)
            return None
        async with self.db.session() as s:
            row = (await s.execute(select(APIToken).where(APIToken.hashed == hashed))).scalar()
            ident = None
            if row is not None and (row.expires_at is None or row.expires_at > utcnow()):
                ident = await self._token_identity(s, row)
        self._put(hashed, ident)
        return ident

    async def _token_identity(self, s: AsyncSession, row: APIToken) -> Identity | None:
        scopes = await token_scopes(s, row)
        if row.user is not None:
            u = row.user
            return Identity(
                "user", u.name, u.id, u.admin, tuple(g.name for g in u.groups), u.user_info,
                u.last_activity, scopes | frozenset(identify_scopes(u.name)), row.id, row.note,
                row.session_id,
            )  # fmt: skip
        if row.service is not None:
            svc = row.service
            return Identity("service", svc.name, svc.id, svc.admin, (), None, None, scopes, row.id)
        return None

    async def from_session(self, session_id: str) -> Identity | None:
        key = "session:" + session_id
        found, ident = self._get(key)
        if found:
            if ident is not None and not await self._alive(_SESSION_ALIVE, sid=session_id):
                self.forget(key)
                return None
            return await self._checked(key, ident)
        async with self.db.session() as s:
            row = await s.get(LoginSession, session_id)
            ident = None
            if row is not None and row.expires_at > utcnow():
                user = await s.get(User, row.user_id)
                if user is not None:
                    ident = Identity(
                        "user", user.name, user.id, user.admin, tuple(g.name for g in user.groups),
                        user.user_info, user.last_activity, await user_scopes(s, user), None, "",
                        session_id, "cookie",
                    )  # fmt: skip
        self._put(key, ident)
        return await self._checked(key, ident)

    async def _checked(self, key: str, ident: Identity | None) -> Identity | None:
        if ident is None:
            return None
        for check in self.session_checks:
            if not await check(ident):
                self.forget(key)
                return None
        return ident
