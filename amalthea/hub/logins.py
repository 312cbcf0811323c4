"""What the hub does with an authenticator's verdict, at login and afterwards.

An :class:`~amalthea.auth.base.AuthResult` (already through ``Authenticator.finish_login``
policy) becomes database facts here, and nowhere else:

- the user row is created or updated: ``admin`` (None = keep), ``user_info``;
- with ``manage_groups``, membership of groups the authenticator manages follows the identity
  system. Invariant: groups with ``managed_by_auth = False`` (made by an admin) are never
  joined, left or created by this module, even when the identity system uses the same name;
  groups the identity system names that do not exist are created with ``managed_by_auth = True``;
- with ``enable_auth_state``, ``auth_state`` is stored encrypted (``users.encrypted_auth_state``,
  keys from AMALTHEA_CRYPT_KEY, see amalthea.auth.state_crypto).

Afterwards, :meth:`Logins.refresh` calls ``Authenticator.refresh_user``: on requests with the
login cookie at most every ``auth_refresh_age`` seconds, and before each spawn
(``refresh_pre_spawn``). A refusal (False, or a refreshed result the allow-lists now refuse)
ends the person's sessions. ``spawn_environment`` is merged into the server's environment;
the hub's own JUPYTERHUB_* variables are set after it and win.

Key rotation: at startup, rows written with an older key (not the first in AMALTHEA_CRYPT_KEY)
are re-encrypted with the newest one: auth_state and TOTP secrets alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import bindparam, select, update

from amalthea.auth.base import Authenticator, AuthResult
from amalthea.auth.state_crypto import AuthStateCrypto, DecryptError, check_config
from amalthea.hub.store import queries
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import Group, LocalAccount, LoginSession, User
from amalthea.hub.store.prepared import PreparedSelect
from amalthea.hub.store.reads import Reader

__all__ = ["Logins", "rotate_stored_secrets"]

log = logging.getLogger("amalthea.logins")

_ID_AND_ADMIN = PreparedSelect(select(User.id, User.admin).where(User.name == bindparam("name")))


def _overrides(auth: Authenticator, name: str) -> bool:
    """Does the plugin implement hook ``name``? (If not, the hub skips the call and its cost.)"""
    return getattr(type(auth), name) is not getattr(Authenticator, name)


class Logins:
    """Applies AuthResults and keeps them fresh. One per hub, in ``hub.extras["logins"]``."""

    def __init__(
        self, db: Database, authenticator: Authenticator, crypto: AuthStateCrypto | None
    ) -> None:
        self.db = db
        self.auth = authenticator
        #: None when enable_auth_state is off: auth_state is then never stored
        self.crypto = crypto
        self._refreshed: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._spawn_env: dict[tuple[str, str], dict[str, str]] = {}
        self._reader: Reader | None = None
        #: called with a username whose permissions changed (identity cache invalidation)
        self.on_change: Callable[[str], None] = lambda _name: None

    @classmethod
    def from_config(cls, db: Database, authenticator: Authenticator) -> Logins:
        """Raises CryptKeyError (a ValueError) when auth_state is on without a usable key."""
        return cls(db, authenticator, check_config(authenticator.enable_auth_state))

    # ---- at login ----------------------------------------------------------------------------
    async def apply(self, result: AuthResult) -> User:
        """Store what ``result`` says about the person; returns the user row (detached)."""
        known = await self._unchanged_user(result)
        if known is not None:
            self._refreshed[result.name] = time.monotonic()
            return known
        async with self.db.session() as s:
            user = await queries.get_or_create_user(s, result.name, result.admin)
            if result.user_info is not None:
                user.user_info = result.user_info
            if self.auth.manage_groups and result.groups is not None:
                await self._sync_groups(s, user, result.groups)
            if self.crypto is not None and result.auth_state is not None:
                user.encrypted_auth_state = self.crypto.encrypt(result.auth_state)
            await s.commit()
        self._refreshed[result.name] = time.monotonic()
        return user

    async def _unchanged_user(self, result: AuthResult) -> User | None:
        """The common login (an existing person, nothing new to store) needs no write
        transaction: one read on a synchronous read connection (``store.reads.Reader``) instead
        of a session, a SELECT and a commit through aiosqlite's worker thread (~6 handoffs).
        Returns a transient ``User`` carrying id, name and admin; None means "use apply"."""
        if result.user_info is not None or (
            self.crypto is not None and result.auth_state is not None
        ):
            return None
        if self.auth.manage_groups and result.groups is not None:
            return None
        if self._reader is None:
            self._reader = Reader(self.db.url)
        found = await self._reader.run(lambda conn: _ID_AND_ADMIN.first(conn, name=result.name))
        if found is None or (result.admin is not None and found[1] != result.admin):
            return None
        return User(id=found[0], name=result.name, admin=found[1])

    async def _sync_groups(self, s: Any, user: User, names: Iterable[str]) -> None:
        wanted = {n[:255] for n in names if n}
        await s.refresh(user, attribute_names=["groups"])  # a new row has none loaded (async)
        found = {
            g.name: g
            for g in (await s.execute(select(Group).where(Group.name.in_(wanted)))).scalars()
        }
        skipped = sorted(n for n, g in found.items() if not g.managed_by_auth)
        if skipped:
            log.info("groups %s of %s are admin-made: membership left to admins", skipped,
                     user.name)  # fmt: skip
        for name in sorted(wanted):
            group = found.get(name)
            if group is None:
                group = Group(name=name, managed_by_auth=True)
                s.add(group)
            elif not group.managed_by_auth:
                continue
            if group not in user.groups:
                user.groups.append(group)
        for group in list(user.groups):
            if group.managed_by_auth and group.name not in wanted:
                user.groups.remove(group)

    # ---- stored state ------------------------------------------------------------------------
    async def stored_result(self, name: str) -> AuthResult | None:
        """The person as the hub knows them now (auth_state decrypted), for refresh and spawn."""
        async with self.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                return None
            state = None
            if self.crypto is not None and user.encrypted_auth_state is not None:
                try:
                    state = self.crypto.decrypt(user.encrypted_auth_state)
                except DecryptError as e:
                    log.warning("auth_state of %s unusable: %s", name, e)
            groups = [g.name for g in user.groups if g.managed_by_auth]
            return AuthResult(
                name=name, admin=user.admin,
                groups=groups if self.auth.manage_groups else None,
                auth_state=state, user_info=user.user_info,
            )  # fmt: skip

    # ---- refresh -------------------------------------------------------------------------------
    def refresh_due(self, name: str) -> bool:
        age = self.auth.auth_refresh_age
        if not age or not _overrides(self.auth, "refresh_user"):
            return False
        return time.monotonic() - self._refreshed.get(name, -1e18) >= age

    async def refresh(self, name: str, force: bool = False) -> bool:
        """Run refresh_user if due (or ``force``); False means "log in again"."""
        if not _overrides(self.auth, "refresh_user"):
            return True
        async with self._locks.setdefault(name, asyncio.Lock()):
            if not force and not self.refresh_due(name):
                return True  # another request refreshed while we waited
            current = await self.stored_result(name)
            if current is None:
                return False
            try:
                fresh = await self.auth.refresh_user(current)
            except Exception:
                # a plugin bug or an IdP outage must not log everybody out
                log.exception("refresh_user(%s) failed; keeping the login", name)
                return True
            if fresh is False:
                log.info("login of %s expired (refresh_user said no)", name)
                self._refreshed.pop(name, None)
                return False
            if isinstance(fresh, AuthResult):
                fresh.name = name
                fresh.admin = self.auth.is_admin(fresh)
                if not self.auth.check_allowed(fresh):
                    log.warning("%s is no longer allowed after refresh: logging out", name)
                    return False
                await self.apply(fresh)
                self.on_change(name)
            self._refreshed[name] = time.monotonic()
            return True

    async def end_sessions(self, name: str) -> list[str]:
        """Delete all login sessions of ``name``; returns their ids (for cache invalidation)."""
        async with self.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                return []
            ids = list(
                (
                    await s.execute(select(LoginSession.id).where(LoginSession.user_id == user.id))
                ).scalars()
            )
            for sid in ids:
                await queries.end_session(s, sid)
            await s.commit()
        return ids

    # ---- spawn -----------------------------------------------------------------------------------
    async def before_spawn(self, rt: Any) -> None:
        """ServerManager.before_spawn hook: refresh, then compute the auth environment."""
        from amalthea.hub.lifecycle.manager import SpawnRefused

        if self.auth.refresh_pre_spawn and not await self.refresh(rt.username, force=True):
            raise SpawnRefused(
                "Your login has expired. Log out and log in again to start a server.", status=403
            )
        if not _overrides(self.auth, "spawn_environment"):
            return
        current = await self.stored_result(rt.username)
        env = await self.auth.spawn_environment(current) if current else {}
        self._spawn_env[rt.key] = {str(k): str(v) for k, v in env.items()}

    def wrap_spawner_factory(self, factory: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The environment lands in ``context.env`` before the hub adds JUPYTERHUB_* to it."""

        def make(ctx: Any) -> Any:
            ctx.env.update(self._spawn_env.pop((ctx.username, ctx.server_name), {}))
            return factory(ctx)

        return make


async def rotate_stored_secrets(db: Database, crypto: AuthStateCrypto) -> int:
    """Re-encrypt auth_state and TOTP secrets written with an older key; returns rows changed.

    Rows no configured key can read are left alone (and counted in the log): their owners log
    in again (auth_state) or an admin resets their second factor.
    """
    if crypto.key_count < 2:
        return 0
    changed = unreadable = 0
    async with db.session() as s:
        for table, column in ((User, User.encrypted_auth_state),
                              (LocalAccount, LocalAccount.totp_secret_encrypted)):  # fmt: skip
            rows = (await s.execute(select(table.id, column).where(column.is_not(None)))).all()
            for row_id, token in rows:
                if token is None or not crypto.needs_rotation(token):
                    continue
                try:
                    new = crypto.rotate(token)
                except DecryptError:
                    unreadable += 1
                    continue
                await s.execute(update(table).where(table.id == row_id).values({column.key: new}))
                changed += 1
        await s.commit()
    if changed or unreadable:
        log.info("AMALTHEA_CRYPT_KEY rotation: re-encrypted %d secret(s) with the newest key; "
                 "%d readable by no key", changed, unreadable)  # fmt: skip
    return changed


async def setup(hub: Any, config: Any) -> Logins:
    """Wire logins into a built hub (called by app.build). Raises ValueError on bad config:
    auth_state without AMALTHEA_CRYPT_KEY, or MFA required for groups without that key."""
    import os

    from amalthea.auth.state_crypto import ENV_VAR

    logins = Logins.from_config(hub.db, hub.authenticator)
    crypto = logins.crypto
    if crypto is None and os.environ.get(ENV_VAR, "").strip():
        crypto = AuthStateCrypto.from_env()  # TOTP secrets use the same keys
    if crypto is not None:
        await rotate_stored_secrets(hub.db, crypto)
    section = config["MFAManager"] if "MFAManager" in config else {}
    required = section.get("mfa_required_groups")
    if required and getattr(hub.accounts, "mfa", None) is None:
        raise ValueError(
            f"c.MFAManager.mfa_required_groups = {sorted(required)} needs {ENV_VAR} (TOTP secrets "
            f"are stored encrypted) and the mfa extra (pip install 'amalthea[mfa]'). Set "
            f"{ENV_VAR} in the hub's environment."
        )

    def forget(name: str) -> None:
        hub.identities.forget_all()  # rare (a refresh changed groups/admin): drop cached scopes

    logins.on_change = forget

    async def session_check(ident: Any) -> bool:
        if ident.kind != "user" or not logins.refresh_due(ident.name):
            return True
        if await logins.refresh(ident.name):
            return True
        for sid in await logins.end_sessions(ident.name):
            hub.identities.forget("session:" + sid)
        return False

    hub.identities.session_checks.append(session_check)
    # first: a refused refresh must not hold a spawn-limit slot taken by a later hook
    hub.servers.before_spawn.insert(0, logins.before_spawn)
    hub.servers.spawner_factory = logins.wrap_spawner_factory(hub.servers.spawner_factory)
    hub.extras["logins"] = logins
    return logins
