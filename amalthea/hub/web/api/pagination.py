"""Opt-in pagination (protocol §6).

``Accept: application/jupyterhub-pagination+json`` switches a list endpoint to the envelope
``{"items": [...], "_pagination": {"offset", "limit", "total", "next"}}``; without it the body is
the bare list, capped at ``max_limit``. ``offset``/``limit`` parse like JupyterHub's
(``abs(int(x))``; a float string like "2.0" is accepted because the OpenAPI file types them as
``number``), limit is clamped to 1..max_limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MEDIA_TYPE", "Page", "PaginationError", "envelope", "parse_page", "wants_envelope"]

MEDIA_TYPE = "application/jupyterhub-pagination+json"
#: beyond any real table, and below SQL's 64-bit integer limit
MAX_OFFSET = 10**12


class PaginationError(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int


def wants_envelope(accept: str | None) -> bool:
    if not accept:
        return False
    return any(part.split(";")[0].strip() == MEDIA_TYPE for part in accept.split(","))


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError
        return abs(int(number))
    except (TypeError, ValueError, OverflowError):
        raise PaginationError(
            f"Invalid argument type, offset and limit must be integers (got {name}={value!r})"
        ) from None


def parse_page(
    offset: str | None,
    limit: str | None,
    envelope_requested: bool,
    default_limit: int = 50,
    max_limit: int = 200,
) -> Page:
    off = _int(offset, "offset") or 0
    if off > MAX_OFFSET:
        raise PaginationError(f"offset too large (at most {MAX_OFFSET})")
    lim = _int(limit, "limit")
    if lim is None:
        lim = default_limit if envelope_requested else max_limit
    lim = max(1, min(lim, max_limit))
    return Page(off, lim)


def envelope(items: Any, page: Page, total: int, request_url: str) -> dict[str, Any]:
    """The pagination envelope; ``next.url`` is the request URL with offset/limit replaced."""
    nxt = None
    if page.offset + page.limit < total:
        parts = urlsplit(request_url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k not in ("offset", "limit")]  # fmt: skip
        new_offset = page.offset + page.limit
        query += [("limit", str(page.limit)), ("offset", str(new_offset))]
        url = urlunsplit(parts._replace(query=urlencode(query)))
        nxt = {"offset": new_offset, "limit": page.limit, "url": url}
    return {
        "items": items,
        "_pagination": {"offset": page.offset, "limit": page.limit, "total": total, "next": nxt},
    }
