"""Route persistence: routes survive a proxy restart.

A store is written only when a route changes (API add/delete) and once at shutdown (to save
``last_activity``); proxied traffic never writes to it. Built-in stores (``--store``):

* ``memory`` - nothing persists (CHP's behaviour);
* ``file:PATH`` - an append-only JSON-lines journal, compacted to a snapshot at start and
  shutdown and whenever it holds 4x more records than routes; an add is one ``write``;
* ``sqlite:PATH`` - one row per route, WAL mode, ``synchronous=NORMAL``.

Neither store fsyncs per change: a crashed proxy keeps every change (the page cache has
it), a power loss can drop the last moments. Redis is not built (see README).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["FileStore", "MemoryStore", "RouteStore", "SqliteStore", "StoreRecord", "open_store"]

#: (prefix, data, last_activity epoch seconds)
StoreRecord = tuple[str, dict[str, Any], float]


class RouteStore(Protocol):
    def load(self) -> list[StoreRecord]:
        """Return the persisted routes. Called once, at start."""

    def put(self, prefix: str, data: dict[str, Any], last_activity: float) -> None:
        """Persist an added or replaced route."""

    def delete(self, prefix: str) -> None:
        """Forget a route."""

    def close(self, routes: Iterable[StoreRecord]) -> None:
        """Save the final state (with current last_activity) and release resources."""


class MemoryStore:
    def load(self) -> list[StoreRecord]:
        return []

    def put(self, prefix: str, data: dict[str, Any], last_activity: float) -> None:
        pass

    def delete(self, prefix: str) -> None:
        pass

    def close(self, routes: Iterable[StoreRecord]) -> None:
        pass


class FileStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Any = None
        self._records = 0
        self._live = 0

    def load(self) -> list[StoreRecord]:
        routes: dict[str, StoreRecord] = {}
        try:
            with open(self.path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        # A torn last line after a crash: keep everything before it.
                        if lineno == 1:
                            raise
                        break
                    if rec.get("op") == "del":
                        routes.pop(rec["prefix"], None)
                    else:
                        routes[rec["prefix"]] = (rec["prefix"], rec["data"], rec["ts"])
        except FileNotFoundError:
            pass
        except ValueError as e:
            raise ValueError(f"route store {self.path!r} is not a JSON-lines journal: {e}") from e
        records = list(routes.values())
        self._compact(records)
        return records

    def _compact(self, records: Iterable[StoreRecord]) -> None:
        if self._file is not None:
            self._file.close()
        tmp = self.path + ".tmp"
        n = 0
        with open(tmp, "w", encoding="utf-8") as f:
            for prefix, data, ts in records:
                f.write(json.dumps({"prefix": prefix, "data": data, "ts": ts}) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._records = self._live = n
        self._file = open(self.path, "a", encoding="utf-8")

    def _append(self, rec: dict[str, Any]) -> None:
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        self._records += 1

    def put(self, prefix: str, data: dict[str, Any], last_activity: float) -> None:
        self._append({"prefix": prefix, "data": data, "ts": last_activity})
        self._live += 1  # over-counts replacements; only used to decide compaction

    def delete(self, prefix: str) -> None:
        self._append({"op": "del", "prefix": prefix})
        self._live = max(0, self._live - 1)

    def maybe_compact(self, routes: Iterable[StoreRecord]) -> None:
        """Rewrite the journal when it holds far more records than live routes."""
        if self._records > 1000 and self._records > 4 * max(self._live, 1):
            self._compact(list(routes))

    def close(self, routes: Iterable[StoreRecord]) -> None:
        self._compact(list(routes))
        self._file.close()
        self._file = None


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS routes "
            "(prefix TEXT PRIMARY KEY, data TEXT NOT NULL, last_activity REAL NOT NULL)"
        )

    def load(self) -> list[StoreRecord]:
        rows = self._db.execute("SELECT prefix, data, last_activity FROM routes").fetchall()
        return [(p, json.loads(d), ts) for p, d, ts in rows]

    def put(self, prefix: str, data: dict[str, Any], last_activity: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO routes VALUES (?, ?, ?)",
            (prefix, json.dumps(data), last_activity),
        )

    def delete(self, prefix: str) -> None:
        self._db.execute("DELETE FROM routes WHERE prefix = ?", (prefix,))

    def close(self, routes: Iterable[StoreRecord]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany(
            "UPDATE routes SET last_activity = ? WHERE prefix = ?",
            [(ts, prefix) for prefix, _, ts in routes],
        )
        self._db.execute("COMMIT")
        self._db.close()


def open_store(spec: str) -> RouteStore:
    """Build a store from the ``--store`` value; raise ``ValueError`` naming accepted forms."""
    if spec == "memory":
        return MemoryStore()
    if spec.startswith("file:") and len(spec) > 5:
        return FileStore(spec[5:])
    if spec.startswith("sqlite:") and len(spec) > 7:
        return SqliteStore(spec[7:])
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from .store_redis import RedisStore

        return RedisStore(spec)
    raise ValueError(
        f"--store {spec!r}: expected memory, file:PATH, sqlite:PATH or redis://host:port/db"
    )
