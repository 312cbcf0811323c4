"""TOTP second factor for ``local`` accounts, with single-use recovery codes.

The local authenticator owns the login page and the account table; it calls :class:`MFAManager`
with a storage object it provides (see :class:`MFAStore`). The stored shape matches the
``local_accounts`` columns: ``totp_secret_encrypted`` (bytes) and ``recovery_codes`` (hashes).

- The TOTP secret never rests in clear text: it is encrypted with the auth_state keys
  (AMALTHEA_CRYPT_KEY, see state_crypto.py), together with ``confirmed`` and ``last_step``.
- Enrolment is two-step: :meth:`MFAManager.enrol` makes a secret and an ``otpauth://`` URI
  (render it as a QR code or show the secret), :meth:`MFAManager.confirm` checks a first code from
  the app and only then switches MFA on and hands out the recovery codes, once.
- A code is accepted within +/- ``valid_window`` 30-second steps (clock drift) and only once:
  ``last_step`` remembers the newest step used, so a code seen over someone's shoulder cannot be
  replayed within its window.
- Recovery codes are 10 random base32 characters (50 bits), stored as argon2 hashes; a used code
  is deleted.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from traitlets import Int, Set, Unicode
from traitlets.config import LoggingConfigurable

from amalthea.auth.state_crypto import AuthStateCrypto, CryptKeyError

if TYPE_CHECKING:
    import pyotp

# pyotp and argon2 are imported by the first MFA operation, not here: the hub imports this
# module (for the MFA pages) at every start. Whether pyotp is installed is still decided here,
# so the pages are disabled with this message when it is not.
if importlib.util.find_spec("pyotp") is None:  # pragma: no cover - depends on the extras
    raise ImportError("MFA needs pyotp: pip install 'amalthea[mfa]'")


def _totp(secret: str) -> pyotp.TOTP:
    import pyotp

    return pyotp.TOTP(secret)


def _random_secret() -> str:
    import pyotp

    return pyotp.random_base32()


# Recovery codes are high-entropy, so a light argon2 setting is enough and keeps checking
# ten hashes fast.
@functools.cache
def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: codes are typed from paper


class MFAError(Exception):
    """An MFA operation that cannot be done in the current state; message is for the person."""


@dataclass
class MFARecord:
    """What the store keeps per account (``local_accounts`` columns)."""

    totp_secret_encrypted: bytes
    recovery_codes: list[str] = field(default_factory=list)


class MFAStore(Protocol):
    """Storage the local authenticator passes in; ``None`` means "not enrolled"."""

    async def load_mfa(self, username: str) -> MFARecord | None: ...

    async def save_mfa(self, username: str, record: MFARecord | None) -> None: ...


class InMemoryMFAStore:
    """Dict-backed MFAStore for tests and for plugin authors' tests."""

    def __init__(self) -> None:
        self.records: dict[str, MFARecord] = {}

    async def load_mfa(self, username: str) -> MFARecord | None:
        return self.records.get(username)

    async def save_mfa(self, username: str, record: MFARecord | None) -> None:
        if record is None:
            self.records.pop(username, None)
        else:
            self.records[username] = record


@dataclass
class Enrolment:
    secret: str
    #: ``otpauth://totp/...`` for authenticator apps (show as a QR code)
    uri: str


def _normalize(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


class MFAManager(LoggingConfigurable):
    """Enrol, verify and recover TOTP second factors, on a store supplied by the caller."""

    mfa_required_groups = Set(
        Unicode(), help="Members of these hub groups must use a second factor to log in."
    ).tag(config=True)
    issuer_name = Unicode("Amalthea", help="Name authenticator apps show for this hub.").tag(
        config=True
    )
    valid_window = Int(1, help="30-second steps of clock drift accepted either side.").tag(
        config=True
    )
    recovery_code_count = Int(10, help="Recovery codes handed out at enrolment.").tag(config=True)

    def __init__(
        self, store: MFAStore, crypto: AuthStateCrypto | None = None, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.store = store
        if crypto is None:
            try:
                crypto = AuthStateCrypto.from_env()
            except CryptKeyError as e:
                raise CryptKeyError(f"MFA stores TOTP secrets encrypted. {e}") from e
        self.crypto = crypto
        self._locks: dict[str, asyncio.Lock] = {}

    def requires_mfa(self, groups: Iterable[str]) -> bool:
        """Policy: must this person (member of ``groups``) use a second factor?"""
        return bool(self.mfa_required_groups & set(groups))

    def _lock(self, username: str) -> asyncio.Lock:
        # One verification at a time per account, so one code cannot be used twice concurrently.
        return self._locks.setdefault(username, asyncio.Lock())

    def _seal(self, secret: str, confirmed: bool, last_step: int) -> bytes:
        return self.crypto.encrypt(
            {"secret": secret, "confirmed": confirmed, "last_step": last_step}
        )

    def _open(self, record: MFARecord) -> dict[str, object]:
        return self.crypto.decrypt(record.totp_secret_encrypted)

    async def is_enrolled(self, username: str) -> bool:
        record = await self.store.load_mfa(username)
        return record is not None and bool(self._open(record).get("confirmed"))

    async def enrol(self, username: str) -> Enrolment:
        """Start enrolment: a new secret, not active until :meth:`confirm`."""
        if await self.is_enrolled(username):
            raise MFAError("A second factor is already set up for this account; remove it first.")
        secret = _random_secret()
        await self.store.save_mfa(username, MFARecord(self._seal(secret, False, 0)))
        uri = _totp(secret).provisioning_uri(name=username, issuer_name=self.issuer_name)
        return Enrolment(secret=secret, uri=uri)

    async def pending_enrolment(self, username: str) -> Enrolment | None:
        """The enrolment started but not yet confirmed (so a reloaded page shows the same secret)."""
        record = await self.store.load_mfa(username)
        if record is None:
            return None
        data = self._open(record)
        if data.get("confirmed"):
            return None
        secret = str(data["secret"])
        uri = _totp(secret).provisioning_uri(name=username, issuer_name=self.issuer_name)
        return Enrolment(secret=secret, uri=uri)

    async def confirm(self, username: str, code: str) -> list[str] | None:
        """Finish enrolment with a code from the app; the recovery codes (shown once) or None."""
        async with self._lock(username):
            record = await self.store.load_mfa(username)
            if record is None:
                raise MFAError("Start setting up the second factor first.")
            data = self._open(record)
            if data.get("confirmed"):
                raise MFAError("The second factor is already set up.")
            step = self._matching_step(str(data["secret"]), code, last_step=0)
            if step is None:
                return None
            codes = self._new_recovery_codes()
            await self.store.save_mfa(
                username,
                MFARecord(
                    self._seal(str(data["secret"]), True, step),
                    [_hasher().hash(_normalize(c)) for c in codes],
                ),
            )
            return codes

    async def verify(self, username: str, code: str) -> bool:
        """True if ``code`` is a current, not yet used TOTP code for an enrolled account."""
        async with self._lock(username):
            record = await self.store.load_mfa(username)
            if record is None:
                return False
            data = self._open(record)
            if not data.get("confirmed"):
                return False
            last = int(data.get("last_step", 0))  # type: ignore[call-overload]
            step = self._matching_step(str(data["secret"]), code, last_step=last)
            if step is None:
                return False
            record.totp_secret_encrypted = self._seal(str(data["secret"]), True, step)
            await self.store.save_mfa(username, record)
            return True

    async def use_recovery_code(self, username: str, code: str) -> bool:
        """True if ``code`` is one of the unused recovery codes; it is then used up."""
        wanted = _normalize(code)
        if not wanted:
            return False
        from argon2.exceptions import InvalidHashError, VerificationError

        async with self._lock(username):
            record = await self.store.load_mfa(username)
            if record is None:
                return False
            for stored in record.recovery_codes:
                try:
                    _hasher().verify(stored, wanted)
                except (VerificationError, InvalidHashError):
                    continue
                record.recovery_codes = [h for h in record.recovery_codes if h != stored]
                await self.store.save_mfa(username, record)
                self.log.info(
                    "recovery code used by %s, %d left", username, len(record.recovery_codes)
                )
                return True
            return False

    async def regenerate_recovery_codes(self, username: str) -> list[str]:
        """Replace all recovery codes; returns the new ones (shown once)."""
        async with self._lock(username):
            record = await self.store.load_mfa(username)
            if record is None or not self._open(record).get("confirmed"):
                raise MFAError("Set up the second factor before making recovery codes.")
            codes = self._new_recovery_codes()
            record.recovery_codes = [_hasher().hash(_normalize(c)) for c in codes]
            await self.store.save_mfa(username, record)
            return codes

    async def disable(self, username: str) -> None:
        await self.store.save_mfa(username, None)

    def _new_recovery_codes(self) -> list[str]:
        """Codes shown as ``xxxxx-xxxxx``; the dash and case are ignored when typed back."""
        codes = []
        for _ in range(self.recovery_code_count):
            raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
            codes.append(f"{raw[:5]}-{raw[5:]}")
        return codes

    def _matching_step(
        self, secret: str, code: str, last_step: int, now: float | None = None
    ) -> int | None:
        """The time step ``code`` belongs to (within the window, newer than last_step), or None."""
        code = "".join(code.split())
        totp = _totp(secret)
        if not (code.isdigit() and len(code) == totp.digits):
            return None
        current = int((time.time() if now is None else now) // totp.interval)
        for step in range(current - self.valid_window, current + self.valid_window + 1):
            if step > last_step and secrets.compare_digest(totp.generate_otp(step), code):
                return step
        return None
