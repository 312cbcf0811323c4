"""The ``local_accounts`` table behind the local authenticator's AccountStore protocol,
and the MFAStore protocol of ``amalthea.auth.mfa`` over the same rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from amalthea.auth.local import Account
from amalthea.hub.clock import utcnow
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import LocalAccount

__all__ = ["SQLAccountStore"]


def _account(row: LocalAccount) -> Account:
    return Account(
        row.username, row.password_hash, row.approved, row.failed_attempts, row.locked_until,
        row.totp_secret_encrypted is not None,
    )  # fmt: skip


class SQLAccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: an amalthea.auth.mfa.MFAManager once the hub sets one up (needs the mfa extra)
        self.mfa: Any = None

    async def _row(self, s: Any, username: str) -> LocalAccount | None:
        return (  # type: ignore[no-any-return]
            await s.execute(select(LocalAccount).where(LocalAccount.username == username))
        ).scalar()

    async def get(self, username: str) -> Account | None:
        async with self.db.session() as s:
            row = await self._row(s, username)
            return _account(row) if row else None

    async def create(self, username: str, password_hash: str, approved: bool) -> Account:
        async with self.db.session() as s:
            row = LocalAccount(
                username=username, password_hash=password_hash, approved=approved, created=utcnow()
            )
            s.add(row)
            await s.commit()
            return _account(row)

    async def _update(self, username: str, **values: Any) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(LocalAccount).where(LocalAccount.username == username).values(**values)
            )
            await s.commit()

    async def set_password(self, username: str, password_hash: str) -> None:
        await self._update(username, password_hash=password_hash, failed_attempts=0,
                           locked_until=None)  # fmt: skip

    async def set_approved(self, username: str, approved: bool) -> None:
        await self._update(username, approved=approved)

    async def record_failure(self, username: str, lock_until: datetime | None) -> int:
        async with self.db.session() as s:
            row = await self._row(s, username)
            if row is None:
                return 0
            row.failed_attempts += 1
            if lock_until is not None:
                row.locked_until, row.failed_attempts = lock_until, 0
            await s.commit()
            return row.failed_attempts

    async def reset_failures(self, username: str) -> None:
        await self._update(username, failed_attempts=0, locked_until=None)

    async def pending(self) -> list[str]:
        async with self.db.session() as s:
            rows = await s.execute(
                select(LocalAccount.username).where(LocalAccount.approved.is_(False))
            )
            return list(rows.scalars())

    async def delete(self, username: str) -> None:
        async with self.db.session() as s:
            await s.execute(delete(LocalAccount).where(LocalAccount.username == username))
            await s.commit()

    async def count(self) -> int:
        async with self.db.session() as s:
            return len(list((await s.execute(select(LocalAccount.id))).scalars()))

    # ---- MFAStore -------------------------------------------------------------------------
    async def load_mfa(self, username: str) -> Any:
        from amalthea.auth.mfa import MFARecord

        async with self.db.session() as s:
            row = await self._row(s, username)
            if row is None or row.totp_secret_encrypted is None:
                return None
            return MFARecord(row.totp_secret_encrypted, list(row.recovery_codes or []))

    async def save_mfa(self, username: str, record: Any) -> None:
        if record is None:
            await self._update(username, totp_secret_encrypted=None, recovery_codes=[])
        else:
            await self._update(username, totp_secret_encrypted=record.totp_secret_encrypted,
                               recovery_codes=list(record.recovery_codes))  # fmt: skip
