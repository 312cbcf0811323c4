"""SELECTs compiled once and run straight on the DBAPI cursor: for the hottest small reads.

Why: executing a statement through SQLAlchemy's ``Connection`` costs ~60-150 µs of Python per
statement (execution context, cache-key lookup, result metadata), while SQLite answers a lookup
by primary or unique key in ~7 µs. Reading one user (``GET /users/NAME``, four statements) was
~0.7 ms of the request's ~1.9 ms of CPU. :class:`PreparedSelect` keeps the statement in the
expression language (names come from the models), compiles it once per dialect, and at run time
only binds parameters, executes on the driver's cursor and applies the same result processors
SQLAlchemy would (SQLite: text → ``datetime``, int → ``bool``, JSON text → objects), so rows are
exactly what ``Connection.execute`` returns.

Limits, on purpose: plain SELECTs with named scalar parameters (no ``expanding`` IN lists, no
post-compile parameters); rows are tuples. Anything else uses ``Connection.execute``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Compiled", "PreparedSelect"]

_Processor = Callable[[Any], Any] | None


class Compiled:
    """``stmt`` compiled for ``dialect``: its SQL text, DBAPI arguments made from named values
    (with the dialect's bind processors) and, for a SELECT, its rows made into Python values.
    ``column_keys``: the columns an INSERT sets (all of them get a placeholder)."""

    def __init__(
        self, stmt: ClauseElement, dialect: Dialect, column_keys: list[str] | None = None
    ) -> None:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=column_keys))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError(f"cannot prepare expanding/post-compile parameters: {stmt}")
        self.sql = compiled.string
        #: parameter names in placeholder order (qmark/format styles), else None (named styles)
        self.order = list(compiled.positiontup or ()) if compiled.positional else None
        self.binds: dict[str, _Processor] = {
            key: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for key, bind in compiled.binds.items()
        }
        selected = stmt.selected_columns if isinstance(stmt, Select) else ()
        self.columns: list[_Processor] = [
            col.type.dialect_impl(dialect).result_processor(dialect, None) for col in selected
        ]
        self.plain = all(p is None for p in self.columns)

    def args(self, params: dict[str, Any]) -> Any:
        values = {k: (p(params[k]) if p else params[k]) for k, p in self.binds.items()}
        return values if self.order is None else tuple(values[k] for k in self.order)

    def rows(self, raw: list[Any]) -> list[tuple[Any, ...]]:
        if self.plain:
            return [tuple(r) for r in raw]
        procs = self.columns
        return [tuple(p(v) if p else v for p, v in zip(procs, r, strict=True)) for r in raw]


class PreparedSelect:
    """``PreparedSelect(select(...).where(X == bindparam("x"))).all(conn, x=1)``."""

    def __init__(self, stmt: Select[*tuple[Any, ...]]) -> None:
        self.stmt = stmt
        self._by_dialect: dict[Dialect, Compiled] = {}

    def _compiled(self, dialect: Dialect) -> Compiled:
        found = self._by_dialect.get(dialect)
        if found is None:
            found = self._by_dialect[dialect] = Compiled(self.stmt, dialect)
        return found

    def all(self, conn: Connection, **params: Any) -> list[tuple[Any, ...]]:
        c = self._compiled(conn.dialect)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(c.sql, c.args(params))
            return c.rows(cursor.fetchall())
        finally:
            cursor.close()

    def first(self, conn: Connection, **params: Any) -> tuple[Any, ...] | None:
        rows = self.all(conn, **params)
        return rows[0] if rows else None
