"""The async database engine and session factory.

SQLite (the default) goes through aiosqlite, which runs every statement in a worker thread, so
the event loop never blocks on disk. PostgreSQL goes through asyncpg. Users write the URL they
know (``sqlite:///x.sqlite``, ``postgresql://...``); we pick the async driver.

SQLite runs in WAL mode with ``synchronous=NORMAL``: readers don't wait for the writer and a
commit costs one fsync at checkpoint time, not per transaction. Durability loss is bounded to
the last transactions before a power cut, which for a hub (sessions, activity) is acceptable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = ["Database", "async_url", "sync_url"]


def async_url(url: str) -> str:
    """Map a user-facing database URL to its asyncio driver."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    if url.startswith(("postgresql:", "postgres:")):
        return "postgresql+asyncpg:" + url.split(":", 1)[1]
    return url


def sync_url(url: str) -> str:
    """Map a user-facing database URL to a synchronous driver (used by Alembic only)."""
    if url.startswith("sqlite+aiosqlite:"):
        return "sqlite:" + url.removeprefix("sqlite+aiosqlite:")
    if url.startswith(("postgresql:", "postgres:", "postgresql+asyncpg:")):
        return "postgresql+psycopg:" + url.split(":", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """Owns the engine; ``session()`` gives an AsyncSession for one unit of work."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        aurl = async_url(url)
        if aurl.startswith("sqlite"):
            # one connection: SQLite serialises writers anyway, and a single aiosqlite thread
            # avoids "database is locked" churn between pooled connections
            kwargs["pool_size"] = 1
            kwargs["max_overflow"] = 0
            kwargs["pool_timeout"] = 60
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
        self.engine: AsyncEngine = create_async_engine(aurl, **kwargs)
        if aurl.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)

    async def dispose(self) -> None:
        await self.engine.dispose()
