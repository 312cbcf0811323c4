"""Where a redirect login keeps its secrets between "go to the IdP" and "back from the IdP".

Decision: OIDC keeps ``state``/``nonce``/PKCE verifier/next URL in a short-lived cookie sealed
with Fernet (encrypted + authenticated + timestamped), named after a hash of ``state`` so two
logins in two tabs do not clobber each other. Nothing is kept on the server, so any hub replica
can finish a login another started, and a flood of abandoned logins costs no memory. Rejected:
a server-side dict (lost on restart, not shared between replicas).

LTI 1.3 cannot use a cookie: the platform POSTs the launch cross-site (often inside an iframe),
and browsers drop SameSite=Lax cookies there; SameSite=None needs HTTPS. So LTI uses
:class:`PendingStore`, an in-memory dict with expiry, which also gives single-use nonces for
replay protection. (With several hub replicas LTI logins need sticky sessions.)
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass

from cryptography.fernet import Fernet, InvalidToken

COOKIE_PREFIX = "amalthea-oauth-"


@dataclass
class PendingLogin:
    state: str
    nonce: str
    code_verifier: str = ""
    next_url: str = ""
    redirect_uri: str = ""


def new_pending(next_url: str = "", redirect_uri: str = "", pkce: bool = True) -> PendingLogin:
    return PendingLogin(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64) if pkce else "",
        next_url=next_url,
        redirect_uri=redirect_uri,
    )


def cookie_name(state: str) -> str:
    return COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


class CookieSealer:
    """Seal/unseal PendingLogin into a cookie value; ``ttl`` seconds of validity."""

    def __init__(self, key: bytes | None = None, ttl: int = 600) -> None:
        self._fernet = Fernet(key or Fernet.generate_key())
        self.ttl = ttl

    def seal(self, pending: PendingLogin) -> str:
        return self._fernet.encrypt(json.dumps(asdict(pending)).encode()).decode()

    def unseal(self, value: str, state: str) -> PendingLogin | None:
        """The pending login if the cookie is genuine, fresh and belongs to ``state``."""
        try:
            pending = PendingLogin(**json.loads(self._fernet.decrypt(value.encode(), ttl=self.ttl)))
        except (InvalidToken, ValueError, TypeError):
            return None
        if not secrets.compare_digest(pending.state, state):
            return None
        return pending


class PendingStore:
    """In-memory, expiring, single-use store of pending logins keyed by ``state``.

    Each nonce belongs to exactly one state and ``pop`` removes it, so a nonce is accepted once:
    a replayed launch finds its state gone, and a replayed token under a fresh state carries the
    wrong nonce.
    """

    def __init__(self, ttl: int = 600, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._pending: dict[str, tuple[float, PendingLogin]] = {}

    def put(self, pending: PendingLogin) -> None:
        self._expire()
        if len(self._pending) >= self.max_entries:
            # Someone is starting logins without finishing them: drop the oldest, not the hub.
            oldest = min(self._pending, key=lambda s: self._pending[s][0])
            del self._pending[oldest]
        self._pending[pending.state] = (time.monotonic() + self.ttl, pending)

    def pop(self, state: str) -> PendingLogin | None:
        """Take the login out (single use); None if unknown, used or expired."""
        self._expire()
        entry = self._pending.pop(state, None)
        return entry[1] if entry else None

    def _expire(self) -> None:
        now = time.monotonic()
        for state in [s for s, (deadline, _) in self._pending.items() if deadline < now]:
            del self._pending[state]

    def __len__(self) -> int:
        return len(self._pending)
