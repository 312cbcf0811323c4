"""API tokens, OAuth codes and client secrets: generation and hashing.

Tokens we generate are 128 random bits, so a single SHA-256 is as strong as any slow hash (no
dictionary to attack) and costs ~1 µs, which keeps token authentication cheap on every request.
Tokens an admin writes by hand into config may be guessable; those are hashed with many rounds
of PBKDF2 instead (``hash_user_provided``), and looked up by prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["hash_token", "new_token", "token_prefix", "verify_hashed"]

PREFIX_LEN = 4
MIN_LEN, MAX_LEN = 8, 64


def new_token() -> str:
    """32 hex characters, like JupyterHub's uuid4 hex tokens."""
    return secrets.token_hex(16)


def new_code() -> str:
    """URL-safe secret for OAuth codes and setup links."""
    return secrets.token_urlsafe(24)


def token_prefix(token: str) -> str:
    return token[:PREFIX_LEN]


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def hash_user_provided(token: str, salt: str | None = None, rounds: int = 16384) -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), salt.encode(), rounds).hex()
    return f"pbkdf2:{rounds}:{salt}:{digest}"


def verify_hashed(token: str, hashed: str) -> bool:
    """Constant-time check of ``token`` against either hash format."""
    if hashed.startswith("sha256:"):
        return hmac.compare_digest(hash_token(token), hashed)
    if hashed.startswith("pbkdf2:"):
        _, rounds, salt, _digest = hashed.split(":", 3)
        return hmac.compare_digest(hash_user_provided(token, salt, int(rounds)), hashed)
    return False


def plausible(token: str) -> bool:
    """Length check before any hashing (JupyterHub 6.1 accepts 8-64 characters)."""
    return MIN_LEN <= len(token) <= MAX_LEN
