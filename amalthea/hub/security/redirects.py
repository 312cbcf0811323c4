"""Safe ``next`` redirects: only paths on this site, never another host.

Rejects absolute URLs, scheme-relative ``//evil``, backslash tricks (``/\\evil`` which browsers
read as ``//evil``), control characters, and anything outside the hub's base URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["safe_next"]


def safe_next(next_url: str | None, base_url: str = "/") -> str | None:
    """Return ``next_url`` if it is a same-site path under ``base_url``, else None."""
    if not next_url:
        return None
    if any(ord(c) < 0x20 or c == "\\" for c in next_url):
        return None
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not next_url.startswith("/") or next_url.startswith("//"):
        return None
    if not parts.path.startswith(base_url):
        return None
    return next_url
