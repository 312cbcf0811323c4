"""Read-only SQLite reads with the standard library, for a hub that is still starting.

Why: a restart spends most of its time importing SQLAlchemy and building the hub; the early API
(``web/early_api.py``) answers token lookups and user models meanwhile, so it reads with
``sqlite3`` (already imported by Python itself in ~1 ms). The statements are the ones
SQLAlchemy compiles for ``store/models.py`` (same text, so the same plans and row orders), and
values are converted the way SQLAlchemy's SQLite types do: DATETIME text → naive ``datetime``,
JSON text → objects, BOOLEAN 0/1 → ``bool``.

The connection is opened read-only (``mode=ro``, ``PRAGMA query_only``) and never waits for a
lock (``busy_timeout`` 0): any :class:`sqlite3.Error` means "cannot tell", and the caller leaves
the request to the full hub. Each request's reads run in one transaction (one snapshot).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from amalthea.hub.store.revision import HEAD

__all__ = ["EarlyReader", "TokenRow", "open_reader", "sqlite_path"]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


# statements with an IN list: the caller appends "(?, ?, ...)" (placeholders only, no values)
_GROUP_ROLES = (
    "SELECT roles.name, roles.scopes FROM roles JOIN group_role_map ON roles.id = "
    "group_role_map.role_id WHERE group_role_map.group_id IN "
)
_SHARES = "SELECT scopes, expires_at FROM shares WHERE user_id = ?"
_GROUPS_OF_USERS = (
    "SELECT users.name, groups.name FROM users JOIN user_group_map ON user_group_map.user_id = "
    "users.id JOIN groups ON groups.id = user_group_map.group_id WHERE users.name IN "
)


def _marks(values: list[Any]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


def open_reader(path: Path) -> EarlyReader | None:
    """A reader for the database at ``path`` if it exists at this Amalthea's schema revision
    (else the start creates or upgrades it, or refuses to start)."""
    if not path.is_file():
        return None
    try:
        reader = EarlyReader(path)
    except sqlite3.Error:
        return None
    try:
        if reader.schema_current():
            return reader
    except sqlite3.Error:
        pass
    reader.close()
    return None


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _json(value: Any) -> Any:
    return None if value is None else json.loads(value)


class TokenRow:
    """The columns of an ``api_tokens`` row the early API needs."""

    __slots__ = ("client_id", "expires_at", "note", "scopes", "service_id", "user_id")

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.user_id: int | None = row[0]
        self.service_id: int | None = row[1]
        self.client_id: str = row[2] or ""
        self.expires_at = _dt(row[3])
        self.note: str = row[4] or ""
        self.scopes: list[str] | None = _json(row[5])


class EarlyReader:
    """One read-only connection to the database file at ``path``."""

    def __init__(self, path: Path) -> None:
        uri = f"file:{quote(str(path))}?mode=ro"
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA query_only=1")
        self.conn.execute("PRAGMA busy_timeout=0")  # never wait on the event loop

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[EarlyReader]:
        """All reads inside see one state of the database."""
        self.conn.execute("BEGIN")
        try:
            yield self
        finally:
            self.conn.execute("ROLLBACK")

    def _all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, args).fetchall()

    def schema_current(self) -> bool:
        rows = self._all("SELECT version_num FROM alembic_version")
        return [r[0] for r in rows] == [HEAD]

    def token(self, hashed: str) -> TokenRow | None:
        rows = self._all(
            "SELECT user_id, service_id, client_id, expires_at, note, scopes FROM api_tokens "
            "WHERE api_tokens.hashed = ?", hashed,
        )  # fmt: skip
        return TokenRow(rows[0]) if rows else None

    def user(self, name: str) -> tuple[Any, ...] | None:
        """(id, name, admin, created, last_activity, user_info, encrypted_auth_state)."""
        rows = self._all(
            "SELECT users.id, users.name, users.admin, users.created, users.last_activity, "
            "users.user_info, users.encrypted_auth_state \nFROM users \nWHERE users.name = ?",
            name,
        )
        if not rows:
            return None
        uid, uname, admin, created, last, info, blob = rows[0]
        return uid, uname, bool(admin), _dt(created), _dt(last), _json(info), blob

    def user_by_id(self, uid: int) -> tuple[int, str, bool] | None:
        rows = self._all("SELECT id, name, admin FROM users WHERE id = ?", uid)
        return (rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None

    def groups(self, uid: int) -> list[tuple[int, str]]:
        """(id, name) of the user's groups, by name."""
        return [
            (gid, name)
            for gid, name in self._all(
                "SELECT groups.id, groups.name \nFROM groups JOIN user_group_map ON groups.id = "
                "user_group_map.group_id \nWHERE user_group_map.user_id = ? ORDER BY groups.name",
                uid,
            )
        ]

    def roles(self, uid: int) -> list[tuple[str, list[str] | None]]:
        """(name, scopes) of the roles assigned to the user."""
        rows = self._all(
            "SELECT roles.name, roles.scopes \nFROM roles JOIN user_role_map ON roles.id = "
            "user_role_map.role_id \nWHERE user_role_map.user_id = ?", uid,
        )  # fmt: skip
        return [(name, _json(scopes)) for name, scopes in rows]

    def group_roles(self, group_ids: Iterable[int]) -> list[tuple[str, list[str] | None]]:
        ids = list(group_ids)
        if not ids:
            return []
        rows = self._all(_GROUP_ROLES + _marks(ids), *ids)
        return [(name, _json(scopes)) for name, scopes in rows]

    def shares(self, uid: int, group_ids: Iterable[int], now: datetime) -> list[str]:
        """Scopes of the unexpired shares granted to the user or their groups."""
        ids = list(group_ids)
        sql = _SHARES + (" OR group_id IN " + _marks(ids) if ids else "")
        out: list[str] = []
        for scopes, expires in self._all(sql, uid, *ids):
            until = _dt(expires)
            if until is None or until > now:
                out.extend(_json(scopes) or [])
        return out

    def client_description(self, client_id: str) -> str | None:
        rows = self._all("SELECT description FROM oauth_clients WHERE identifier = ?", client_id)
        return rows[0][0] if rows else None

    def groups_of_users(self, names: Iterable[str]) -> dict[str, list[str]]:
        wanted = list(set(names))
        if not wanted:
            return {}
        out: dict[str, list[str]] = {}
        for uname, gname in self._all(_GROUPS_OF_USERS + _marks(wanted), *wanted):
            out.setdefault(uname, []).append(gname)
        return out

    def group_names(self, uid: int) -> list[str]:
        return [name for _, name in self.groups(uid)]

    def servers(self, uid: int) -> list[tuple[Any, ...]]:
        """(name, display_name, state, started, last_activity, user_options, spawner_state)."""
        rows = self._all(
            "SELECT servers.name, servers.display_name, servers.state, servers.started, "
            "servers.last_activity, servers.user_options, servers.spawner_state \nFROM servers "
            "\nWHERE servers.user_id = ?", uid,
        )  # fmt: skip
        return [
            (n, d, s, _dt(st), _dt(la), _json(uo), _json(ss)) for n, d, s, st, la, uo, ss in rows
        ]
