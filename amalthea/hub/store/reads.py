"""Read-heavy queries on a synchronous engine, in one call per request.

Why: through aiosqlite every statement costs several thread handoffs (cursor, execute, fetch,
close), each a GIL convoy; a users page needs ~5 statements, so the handoffs cost more CPU than
the SQL. Running the whole batch as one synchronous function (``Reader.run``) pays none for
SQLite and one (a worker thread) for PostgreSQL. SQLite in WAL mode serves this second connection's reads without blocking the writer;
PostgreSQL goes through psycopg. Only reads go here: writes stay on the async engine, so
there is still exactly one writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event

from amalthea.hub.store.db import sync_url

__all__ = ["Reader"]

T = TypeVar("T")


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA query_only=1")  # this engine must never write
    # headroom: at 10,000 users the database (~2.1 MB) reaches SQLite's default 2 MiB page
    # cache, beyond it random user lookups pay a read() per evicted page; memory is used as
    # touched, so a small hub does not pay for this
    cur.execute("PRAGMA cache_size=-32000")
    cur.close()


class Reader:
    def __init__(self, url: str, pool_size: int = 2) -> None:
        surl = sync_url(url)
        kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 2}
        if surl.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False}
        self.engine: Engine = create_engine(surl, **kwargs)
        self.inline = surl.startswith("sqlite")
        #: inline (SQLite) calls run one at a time on the event loop, so they share one
        #: connection instead of a pool checkout and reset per call
        self._inline_conn: Connection | None = None
        if surl.startswith("sqlite"):
            event.listen(self.engine, "connect", _pragmas)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` inside one read transaction.

        SQLite: on the event loop itself. A page read is ~1 ms of SQLite C code plus the Python
        that builds the models, which needs the GIL whatever thread runs it; a worker thread
        would only add handoffs (measured: ~40% more hub CPU per users page at concurrency
        10). PostgreSQL: in a worker thread, because a network round trip must not block.
        """
        if self.inline:
            return self._call_inline(fn, *args)
        return await asyncio.to_thread(self._call, fn, *args)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        with self.engine.connect() as conn:
            return fn(conn, *args)

    def _call_inline(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._inline_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._inline_conn = self.engine.connect()
        try:
            return fn(conn, *args)
        except BaseException:
            self._inline_conn = None
            conn.close()  # a failed read must not leave a half-read cursor or transaction
            raise
        finally:
            if self._inline_conn is conn:
                conn.rollback()  # ends the read: the next call sees newer commits

    def dispose(self) -> None:
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None
        self.engine.dispose()


def reader_for(hub: Any) -> Reader:
    """The hub's shared Reader (created on first use, kept in ``hub.extras``)."""
    reader = hub.extras.get("reader")
    if reader is None:
        reader = hub.extras["reader"] = Reader(hub.db.url)
    return reader  # type: ignore[no-any-return]


__all__ += ["Connection", "reader_for"]
