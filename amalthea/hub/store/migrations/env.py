"""Alembic environment: runs migrations on a synchronous connection.

The hub calls :func:`amalthea.hub.store.migrate.upgrade` with a URL; this file reads it from
``config.attributes["url"]`` (or ``sqlalchemy.url``) and migrates with a sync driver.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from amalthea.hub.store.db import sync_url
from amalthea.hub.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    url = sync_url(config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    url = sync_url(config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or "")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
