"""Time, in one place: naive UTC datetimes in the database, ISO 8601 'Z' on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Current time as naive UTC (what the database stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(dt: datetime | None) -> str | None:
    """``2026-11-25T22:08:42.072188Z`` (JupyterHub's wire format), or None."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds") + "Z"
