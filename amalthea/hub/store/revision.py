"""The schema revision this Amalthea needs, without importing SQLAlchemy or Alembic.

``migrate.py`` refuses (or upgrades) a database at another revision; the early API of a starting
hub (``web/early_api.py``) reads a database only when it is at this one.
"""

from __future__ import annotations

__all__ = ["HEAD"]

#: the newest revision in migrations/versions; a test checks it against Alembic's own answer.
#: Knowing it here lets a hub on an up-to-date database start without importing Alembic (~0.3 s).
HEAD = "0002_password_links"
