"""XSRF tokens.

A logged-in browser's token is an HMAC of its session id: nothing to store, and it changes at
every login. Anonymous forms (login, sign-up) use a double-submit token: a random value in the
``_xsrf`` cookie that the form must echo. Both are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["anonymous_token", "session_token", "tokens_match"]


def session_token(secret: bytes, session_id: str) -> str:
    return hmac.new(secret, b"xsrf:" + session_id.encode(), hashlib.sha256).hexdigest()[:40]


def anonymous_token() -> str:
    return secrets.token_hex(20)


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
