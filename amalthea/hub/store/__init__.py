"""Storage: SQLAlchemy 2 models, the async engine, and Alembic migrations.

Nothing above this package writes SQL; nothing in this package knows HTTP.
"""
