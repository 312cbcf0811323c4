"""Schema creation and upgrades (Alembic), run in a worker thread at hub start or by
``amalthea upgrade-db``.

A new database gets the whole schema from the models and is stamped at the head revision (one
``create_all`` is much faster than replaying every migration); an existing one is upgraded only
when asked (``amalthea upgrade-db``) or when ``c.Amalthea.upgrade_db = True``, because silently
migrating a shared production database is not something a hub should do on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, pool, text

from amalthea.hub.store.db import sync_url
from amalthea.hub.store.models import Base
from amalthea.hub.store.revision import HEAD

__all__ = ["HEAD", "DatabaseNeedsUpgrade", "prepare", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseNeedsUpgrade(Exception):
    """The database schema is older than this Amalthea; the message says how to upgrade."""


def _config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config("")).get_current_head() or ""


def upgrade(url: str) -> None:
    """Bring the schema to the head revision (creates it on an empty database)."""
    from alembic import command

    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if not inspect(conn).has_table("users"):
                Base.metadata.create_all(conn)
                cfg = _config(url)
                cfg.attributes["connection"] = conn
                command.stamp(cfg, "head")
                return
            cfg = _config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def prepare(url: str, allow_upgrade: bool = False) -> None:
    """Create a missing schema; refuse (or upgrade) an outdated one."""
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("users"):
                current = None
            elif not inspect(conn).has_table("alembic_version"):
                current = "none"
            else:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
                current = row[0] if row else "none"
    finally:
        engine.dispose()
    if current == HEAD:
        return
    if current is None or allow_upgrade:
        upgrade(url)
    else:
        raise DatabaseNeedsUpgrade(
            f"The database at {url} has schema revision {current}, this Amalthea needs {HEAD}. "
            "Back it up, then run `amalthea upgrade-db` (or set c.Amalthea.upgrade_db = True)."
        )
