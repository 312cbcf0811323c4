"""``local``: the hub keeps its own accounts (the default authenticator).

Passwords are argon2id hashes (argon2-cffi defaults, RFC 9106's second recommended setting),
checked in a worker thread so a login never stalls the event loop. Policy, all configurable:
sign-up on/off, admin approval of sign-ups, minimum length and a small deny-list, lockout after
``lockout_attempts`` failures for ``lockout_seconds``. Unknown names cost the same argon2 check
as known ones, so response time does not reveal which accounts exist.

Storage is the hub's ``local_accounts`` table behind :class:`AccountStore`, handed in as
``context.store``. When an account has a TOTP second factor (``amalthea.auth.mfa``), the login
form must carry a valid ``otp`` code (or a recovery code).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from traitlets import Bool, Integer, default

from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest
from amalthea.hub.clock import utcnow

__all__ = ["Account", "AccountStore", "LocalAuthenticator"]


class _Argon2:
    """argon2-cffi's ``PasswordHasher`` (defaults), imported on the first password operation:
    the hub imports this module at every start and most starts check no password."""

    @functools.cached_property
    def _hasher(self) -> Any:
        from argon2 import PasswordHasher

        return PasswordHasher()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)  # type: ignore[no-any-return]

    def verify(self, stored: str, password: str) -> bool:
        """True if it matches; False (not an exception) when it does not or ``stored`` is bad."""
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return self._hasher.verify(stored, password)  # type: ignore[no-any-return]
        except (VerificationError, InvalidHashError):
            return False

    def check_needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)  # type: ignore[no-any-return]


_hasher = _Argon2()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so both paths cost one argon2 check.
    Computed on first use: hashing at import would add ~0.1-1 s to every hub start."""
    return _hasher.hash("amalthea-timing-equaliser")


_COMMON = frozenset(
    "password password1 password123 12345678 123456789 1234567890 qwertyuiop qwerty123 "
    "iloveyou letmein1 welcome1 admin123 changeme abc12345 11111111 00000000 passw0rd "
    "sunshine football baseball dragon123 monkey123 trustno1 jupyterhub amalthea".split()
)


@dataclass
class Account:
    username: str
    password_hash: str
    approved: bool = True
    failed_attempts: int = 0
    locked_until: datetime | None = None
    has_mfa: bool = False


class AccountStore(Protocol):
    async def get(self, username: str) -> Account | None: ...
    async def create(self, username: str, password_hash: str, approved: bool) -> Account: ...
    async def set_password(self, username: str, password_hash: str) -> None: ...
    async def set_approved(self, username: str, approved: bool) -> None: ...
    async def record_failure(self, username: str, lock_until: datetime | None) -> int: ...
    async def reset_failures(self, username: str) -> None: ...
    async def pending(self) -> list[str]: ...
    async def delete(self, username: str) -> None: ...


class LocalAuthenticator(Authenticator):
    allow_signup = Bool(
        False, help="Show a sign-up page where people create their own accounts."
    ).tag(config=True)
    signup_requires_approval = Bool(
        True, help="New sign-ups cannot log in until an admin approves them."
    ).tag(config=True)
    min_password_length = Integer(8, help="Shortest password accepted.").tag(config=True)
    lockout_attempts = Integer(
        5, help="Failed logins in a row after which the account is locked (0 = never)."
    ).tag(config=True)
    lockout_seconds = Integer(300, help="How long a locked account stays locked.").tag(config=True)

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        return True  # an account exists only if an admin or an approved sign-up made it

    @property
    def store(self) -> AccountStore:
        if self.context.store is None:
            raise RuntimeError("LocalAuthenticator needs the hub's account store (context.store)")
        return self.context.store  # type: ignore[no-any-return]

    # ---- passwords -------------------------------------------------------------------------
    def password_problem(self, username: str, password: str) -> str | None:
        """Why ``password`` is not acceptable, or None."""
        if len(password) < self.min_password_length:
            return f"The password must have at least {self.min_password_length} characters."
        if len(password) > 1024:
            return "The password is too long (at most 1024 characters)."
        if password.lower() in _COMMON or password.lower() == username.lower():
            return "This password is too easy to guess. Choose another one."
        if len(set(password)) < 4:
            return "The password repeats too few different characters."
        return None

    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(_hasher.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        return await asyncio.to_thread(_hasher.verify, stored, password)

    # ---- the contract ----------------------------------------------------------------------
    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        name = self.normalize_username(request.form.get("username", ""))
        password = request.form.get("password", "")
        if not name or not password or len(name) > 255:
            return None
        account = await self.store.get(name)
        if account is None:
            await self._verify(_dummy_hash(), password)
            return None
        if not await self._check_password(account, password, "login"):
            return None
        if not account.approved:
            raise AuthError(
                "Your account is waiting for an administrator's approval.",
                log_message=f"login of unapproved account {name!r}",
            )
        if (
            account.has_mfa
            and await self._mfa_active(name)
            and not await self._check_mfa(name, request.form)
        ):
            await self.store.record_failure(name, None)
            raise AuthError("The one-time code is missing or wrong.", status=403)
        if account.failed_attempts:
            await self.store.reset_failures(name)
        if _hasher.check_needs_rehash(account.password_hash):
            await self.store.set_password(name, await self.hash_password(password))
        return AuthResult(name=name)

    async def _check_password(self, account: Account, password: str, what: str) -> bool:
        """The password check shared by login and change-password, so both count toward the
        same lockout: raises 429 while locked; a wrong password is recorded (and may lock)."""
        now = utcnow()
        if account.locked_until and account.locked_until > now:
            minutes = max(1, int((account.locked_until - now).total_seconds() // 60) + 1)
            raise AuthError(
                f"Too many failed attempts. This account is locked for about {minutes} more "
                "minute(s).",
                log_message=f"{what} for locked account {account.username!r}",
                status=429,
            )
        if await self._verify(account.password_hash, password):
            return True
        lock = None
        if self.lockout_attempts and account.failed_attempts + 1 >= self.lockout_attempts:
            lock = now + timedelta(seconds=self.lockout_seconds)
        await self.store.record_failure(account.username, lock)
        return False

    async def _mfa_active(self, name: str) -> bool:
        """A started but unconfirmed enrolment must not lock the person out; without the MFA
        manager (no AMALTHEA_CRYPT_KEY) a stored secret cannot be checked: fail closed."""
        manager = getattr(self.context.store, "mfa", None)
        return manager is None or bool(await manager.is_enrolled(name))

    async def _check_mfa(self, name: str, form: Any) -> bool:
        manager = getattr(self.context.store, "mfa", None)
        code = (form.get("otp") or "").strip()
        if manager is None or not code:
            return False
        return bool(await manager.verify(name, code) or await manager.use_recovery_code(name, code))

    # ---- account management (used by the hub's setup, sign-up and password pages) ---------
    async def create_account(self, username: str, password: str, approved: bool = True) -> Account:
        name = self.normalize_username(username)
        problem = self.validate_username(name) or self.password_problem(name, password)
        if problem:
            raise AuthError(problem, status=400)
        if await self.store.get(name) is not None:
            raise AuthError(f"The name {name!r} is already taken.", status=409)
        return await self.store.create(name, await self.hash_password(password), approved)

    async def signup(self, username: str, password: str) -> Account:
        if not self.allow_signup:
            raise AuthError("Sign-up is switched off on this hub.", status=404)
        return await self.create_account(
            username, password, approved=not self.signup_requires_approval
        )

    async def change_password(self, username: str, old: str, new: str) -> None:
        """Raises AuthError: 403 wrong current password (counts toward the lockout, like a
        failed login), 429 account locked, 400 new password refused by the policy."""
        account = await self.store.get(username)
        if account is None or not await self._check_password(account, old, "password change"):
            raise AuthError("The current password is wrong.", status=403)
        problem = self.password_problem(username, new)
        if problem:
            raise AuthError(problem, status=400)
        await self.store.set_password(username, await self.hash_password(new))

    async def set_password(self, username: str, new: str) -> None:
        """Admin reset / first-run setup: no old password, policy still applies."""
        problem = self.password_problem(username, new)
        if problem:
            raise AuthError(problem, status=400)
        await self.store.set_password(username, await self.hash_password(new))
