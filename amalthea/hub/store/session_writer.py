"""Login sessions: committed on the event loop when SQLite's write lock is free, else by one
writer thread that commits everything waiting in one transaction.

Why: a login's only write is its session row. Through the async engine that INSERT is a
session, a connection checkout, BEGIN, execute, COMMIT and a reset, each a hop to aiosqlite's
thread and back (a wake-up plus a GIL hand-over): ~2 ms of CPU per login, most of a form
login's cost. The INSERT and COMMIT themselves are ~70 µs of SQLite.

How, and what the event loop may wait for:

- First try: ``BEGIN IMMEDIATE`` on a connection with no busy timeout. If another connection
  holds the write lock, SQLite answers BUSY at once and the row goes to the thread. Otherwise
  the INSERT and COMMIT run inline: in WAL mode with ``synchronous=NORMAL`` a commit appends to
  the WAL and does not fsync, and this connection never checkpoints (``wal_autocheckpoint=0``;
  the thread runs a PASSIVE checkpoint every ``CHECKPOINT_EVERY`` inline commits, the async
  engine's connection checkpoints as usual). So the loop never waits for a lock or an fsync.
- The thread: a login puts its row on a queue and awaits a future; the thread waits for the
  lock (``busy_timeout``, 5 s, then those logins fail with the error, as a locked INSERT through
  the async engine would), writes every row waiting with one ``executemany`` and settles the
  batch with one call back into the loop. Under contention many logins share a commit; one bad
  row (a user deleted mid-login) fails alone: after an integrity error the batch is retried row
  by row.

Durability is that of any hub write: ``create`` returns only after the row is committed, so a
login cookie is never sent for a row that is not in the database (a hub crash loses nothing; a
power cut may lose the last commits, as for every write with ``synchronous=NORMAL``).

These are writing connections next to the async engine's. That is safe with SQLite's locking:
they take the write lock first (``BEGIN IMMEDIATE``), and the async engine's driver opens its
transactions at their first write statement, so no connection ever has to upgrade a read
snapshot to a write (the case that fails at once with SQLITE_BUSY instead of waiting).

PostgreSQL (asyncpg, no thread hops) inserts through the async engine.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import make_url

from amalthea.hub.clock import utcnow
from amalthea.hub.store.db import Database, sync_url
from amalthea.hub.store.models import LoginSession
from amalthea.hub.store.prepared import Compiled

__all__ = ["SessionWriter", "session_values", "writer_for"]

log = logging.getLogger("amalthea.store")

_COLUMNS = ["id", "user_id", "created", "last_seen", "expires_at", "user_agent"]
_Item = tuple[dict[str, Any], "asyncio.Future[None]"]
#: inline commits between two checkpoints (each commit adds ~2-3 pages to the WAL)
CHECKPOINT_EVERY = 300
_CHECKPOINT = "checkpoint"


def session_values(user_id: int, max_age_days: float, user_agent: str = "") -> dict[str, Any]:
    """A new login session row (the id is the cookie value)."""
    now = utcnow()
    return {
        "id": uuid.uuid4().hex, "user_id": user_id, "created": now, "last_seen": now,
        "expires_at": now + timedelta(days=max_age_days), "user_agent": user_agent[:500],
    }  # fmt: skip


def _settle(batch: list[_Item], errors: list[BaseException | None]) -> None:
    for (_, fut), err in zip(batch, errors, strict=True):
        if fut.done():  # the request went away; its row is written and simply expires
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(err)


class SessionWriter:
    """``await writer.create(user_id, max_age_days, user_agent)`` → the committed session id."""

    def __init__(self, db: Database, max_batch: int = 500, busy_timeout: float = 5.0) -> None:
        self.db = db
        url = make_url(sync_url(db.url))
        #: None: not SQLite (or in-memory, which a second connection cannot see)
        self.path = url.database if url.get_backend_name() == "sqlite" else None
        if self.path in ("", ":memory:"):
            self.path = None
        self.max_batch = max_batch
        self.busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[_Item | str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._insert = Compiled(insert(LoginSession), pysqlite.dialect(), _COLUMNS)
        self._inline: sqlite3.Connection | None = None
        self._since_checkpoint = 0

    async def create(self, user_id: int, max_age_days: float, user_agent: str = "") -> str:
        values = session_values(user_id, max_age_days, user_agent)
        if self.path is None:
            async with self.db.session() as s:
                await s.execute(insert(LoginSession), values)
                await s.commit()
        elif not self._write_inline(values):
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._put((values, fut))
            await fut
        return str(values["id"])

    def _write_inline(self, values: dict[str, Any]) -> bool:
        """Commit now if the write lock is free (see the module docstring); False if it is not."""
        if self._inline is None:
            self._inline = self._connect(timeout=0)
            self._inline.execute("PRAGMA wal_autocheckpoint=0")  # no checkpoint on the loop
        conn = self._inline
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(self._insert.sql, self._insert.args(values))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            return False  # another writer has the lock: the thread waits for it, not the loop
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            self._put(_CHECKPOINT)
        return True

    def _put(self, item: _Item | str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="amalthea-session-writer", daemon=True
            )
            self._thread.start()
        self._queue.put(item)

    async def close(self) -> None:
        """Write what is queued, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join, 10)
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    # ---- the writer thread ----------------------------------------------------------------
    def _connect(self, timeout: float) -> sqlite3.Connection:
        assert self.path is not None
        # isolation_level=None: we say BEGIN IMMEDIATE / COMMIT ourselves
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                               check_same_thread=False)  # fmt: skip
        conn.execute("PRAGMA synchronous=NORMAL")  # per connection; WAL is set by the engine
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        stopping = False
        while not stopping:
            batch, checkpoint, stopping = self._take(self._queue.get())
            try:
                conn = conn or self._connect(self.busy_timeout)
                if checkpoint:  # PASSIVE: copies what no reader needs, never waits for anyone
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                errors = self._write(conn, batch) if batch else []
            except Exception as e:  # cannot even open the database: fail this batch
                log.exception("writing %d login session(s) failed", len(batch))
                conn = None
                errors = [e] * len(batch)
            if batch:
                self._call_back(batch, errors)
        if conn is not None:
            conn.close()

    def _take(self, item: _Item | str | None) -> tuple[list[_Item], bool, bool]:
        """``item`` and whatever else is waiting: (rows, checkpoint asked, stop asked)."""
        batch: list[_Item] = []
        checkpoint = False
        while item is not None:
            if isinstance(item, str):
                checkpoint = True
            else:
                batch.append(item)
            if len(batch) >= self.max_batch:
                return batch, checkpoint, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, checkpoint, False
        return batch, checkpoint, True

    def _write(self, conn: sqlite3.Connection, batch: list[_Item]) -> list[BaseException | None]:
        args = [self._insert.args(values) for values, _ in batch]
        try:
            self._transaction(conn, lambda: conn.executemany(self._insert.sql, args))
            return [None] * len(batch)
        except sqlite3.IntegrityError as e:
            if len(batch) == 1:
                return [e]
        except sqlite3.Error as e:
            log.warning("writing %d login session(s) failed: %s", len(batch), e)
            return [e] * len(batch)
        errors: list[BaseException | None] = []
        for one in args:  # find the row that broke the batch; the others still get written
            try:
                self._transaction(conn, lambda: conn.executemany(self._insert.sql, [one]))  # noqa: B023
                errors.append(None)
            except sqlite3.Error as e:
                errors.append(e)
        return errors

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], Any]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            body()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _call_back(batch: list[_Item], errors: list[BaseException | None]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, tuple[list[_Item], list[BaseException | None]]]
        by_loop = {}
        for item, err in zip(batch, errors, strict=True):
            items, errs = by_loop.setdefault(item[1].get_loop(), ([], []))
            items.append(item)
            errs.append(err)
        for loop, (items, errs) in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items, errs)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def writer_for(hub: Any) -> SessionWriter:
    """The hub's shared SessionWriter (created on first use, kept in ``hub.extras``)."""
    writer = hub.extras.get("session_writer")
    if writer is None:
        writer = hub.extras["session_writer"] = SessionWriter(hub.db)
    return writer  # type: ignore[no-any-return]
