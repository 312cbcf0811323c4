"""Set-Cookie headers for the hub's own cookies, built directly instead of through Morsels.

Why: Tornado's ``set_cookie`` validates with regexes, builds a ``SimpleCookie`` and a
``Morsel`` per cookie, formats ``expires`` through ``email.utils``, and renders the Morsel
again at flush. A form login sets four cookies (XSRF on the page, then the login and session
cookies and the XSRF one cleared); profiled, that was ~7 % of the hub's CPU per login.

What stays the same: the header text, byte for byte (``SimpleCookie``'s quoting of the value,
the attributes in Morsel's order and spelling), Tornado's checks (characters a cookie name,
value or attribute may not contain raise ``CookieError``), and Tornado's place for outgoing
cookies (``handler._new_cookie``, rendered at flush, replaced when the same name is set
again). Cookies with a ``domain``, ``max_age`` or other attributes go through Tornado.
``tests/hub/test_cookies.py`` compares the headers with Tornado's own.
"""

from __future__ import annotations

import datetime
import http.cookies
import re
import time
from typing import Any

from tornado import httputil

__all__ = ["PrebuiltMorsel", "cookie_header", "expires_text", "when_of"]

# Tornado's checks (web.RequestHandler.set_cookie): control characters and space in the value
# (ValueError); those plus ";" and DEL in the name and attribute values (CookieError).
_BAD_VALUE = re.compile(r"[\x00-\x20]")
_BAD_ATTR = re.compile(r"[\x00-\x20\x3b\x7f]")
_quoter = http.cookies.SimpleCookie()
_expires_cache: dict[int, str] = {}


class PrebuiltMorsel(http.cookies.Morsel):  # type: ignore[type-arg]
    """A Morsel whose header text is already rendered (all Tornado's flush asks of it)."""

    def __init__(self, key: str, value: str, coded: str, text: str) -> None:
        super().__init__()
        self.set(key, value, coded)  # SimpleCookie's key checks (CookieError)
        self.text = text

    def OutputString(self, attrs: Any = None) -> str:
        return self.text


def expires_text(when: float) -> str:
    """``format_timestamp`` of ``when``, remembered per whole second (cookies set in the same
    second share it)."""
    second = int(when)
    text = _expires_cache.get(second)
    if text is None:
        if len(_expires_cache) > 64:
            _expires_cache.clear()
        text = _expires_cache[second] = httputil.format_timestamp(second)
    return text


def cookie_header(
    name: str,
    value: str,
    *,
    path: str | None,
    expires: float | None,
    httponly: bool,
    secure: bool,
    samesite: str | None,
) -> tuple[str, str]:
    """The quoted value and the Set-Cookie header text Morsel.OutputString would render.

    Raises ``http.cookies.CookieError`` where Tornado (or SimpleCookie) would.
    """
    if _BAD_VALUE.search(value):
        raise ValueError(f"Invalid cookie {name!r}: {value!r}")
    for attr, attr_value in (("name", name), ("path", path), ("samesite", samesite)):
        if attr_value is not None and _BAD_ATTR.search(attr_value):
            raise http.cookies.CookieError(
                f"Invalid cookie attribute {attr}={attr_value!r} for cookie {name!r}"
            )
    _, coded = _quoter.value_encode(value)
    # Morsel.OutputString: "key=value", then the attributes sorted by their key name.
    parts = [f"{name}={coded}"]
    if expires is not None:
        parts.append(f"expires={expires_text(expires)}")
    if httponly:
        parts.append("HttpOnly")
    if path:
        parts.append(f"Path={path}")
    if samesite:
        parts.append(f"SameSite={samesite}")
    if secure:
        parts.append("Secure")
    return coded, "; ".join(parts)


def when_of(expires: Any, expires_days: float | None) -> float | None:
    """Tornado's ``expires``/``expires_days`` as a Unix time, or ``None`` (no expiry)."""
    if expires_days is not None and not expires:
        return time.time() + expires_days * 86400
    if not expires:
        return None
    if isinstance(expires, datetime.datetime):
        if expires.tzinfo is None:  # Tornado treats naive datetimes as UTC
            expires = expires.replace(tzinfo=datetime.UTC)
        return float(expires.timestamp())
    if isinstance(expires, (int, float)):
        return float(expires)
    raise TypeError  # a time tuple and the like: the caller leaves it to Tornado
