"""Client half of the OAuth2 authorization-code flow with PKCE (RFC 6749, RFC 7636).

A login starts by remembering a :class:`PendingLogin` under a random state id and sending
the browser to the hub; the callback hands back ``state`` and ``code``. The state is checked
twice: it must name a pending login *here* (server-side, so the PKCE verifier never leaves
this process) and it must equal the value of the signed state cookie that this browser got
when the login started (so a state id leaked to another browser is useless).

Decision: pending logins live in memory, not in the cookie. A restart of the server drops
logins that were in flight; the user sees "login expired, try again" and one more redirect.
Sans-IO: the store and helpers do no networking and are tested directly.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlencode

__all__ = [
    "OAuthStateError",
    "PendingLogin",
    "StateStore",
    "authorize_url",
    "code_challenge",
    "safe_next_url",
]

STATE_TTL = 600.0  # seconds a login may take; also the state cookie's max age


class OAuthStateError(Exception):
    """The callback's state does not match a login this browser started.

    ``status`` is what the browser should get: 400 for a malformed/missing state,
    403 for one that does not match (possible forgery).
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def code_challenge(verifier: str) -> str:
    """PKCE S256 challenge: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class PendingLogin:
    next_url: str
    cookie_suffix: str  # per-login cookie name suffix, so parallel logins in tabs don't clash
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    created: float = field(default_factory=time.monotonic)

    @property
    def challenge(self) -> str:
        return code_challenge(self.verifier)


class StateStore:
    """Pending logins keyed by state id, expiring after ``ttl`` and bounded in number."""

    def __init__(self, ttl: float = STATE_TTL, max_pending: int = 10_000) -> None:
        self.ttl = ttl
        self.max_pending = max_pending
        self._pending: OrderedDict[str, PendingLogin] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def begin(self, next_url: str) -> tuple[str, PendingLogin]:
        """Start a login; returns the state id to send to the hub and the record."""
        self._expire()
        while len(self._pending) >= self.max_pending:
            self._pending.popitem(last=False)
        state = secrets.token_urlsafe(16)
        suffix = "".join(secrets.choice(string.ascii_letters) for _ in range(8))
        login = PendingLogin(next_url=next_url, cookie_suffix=suffix)
        self._pending[state] = login
        return state, login

    def peek(self, state: str | None) -> PendingLogin:
        """The pending login for ``state`` without consuming it (to find its cookie)."""
        if not state:
            raise OAuthStateError("OAuth callback without a state parameter", 400)
        self._expire()
        login = self._pending.get(state)
        if login is None:
            raise OAuthStateError(
                "OAuth state does not match a login started here (expired or forged); "
                "reload the page to log in again",
                403,
            )
        return login

    def finish(self, state: str | None, cookie_value: str | None) -> PendingLogin:
        """Consume the pending login after checking the browser's state cookie."""
        login = self.peek(state)
        if cookie_value is None:
            raise OAuthStateError(
                "OAuth state cookie missing; cookies must be enabled to log in", 400
            )
        if not secrets.compare_digest(cookie_value, state or ""):
            raise OAuthStateError("OAuth state does not match this browser's login", 403)
        del self._pending[state or ""]
        return login

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl
        while self._pending:
            state, login = next(iter(self._pending.items()))
            if login.created >= cutoff:
                break
            del self._pending[state]


def authorize_url(
    *,
    hub_host: str,
    hub_prefix: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    challenge: str,
) -> str:
    """The hub's authorize endpoint with our parameters (no ``scope``: client defaults)."""
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
        }
    )
    return f"{hub_host}{hub_prefix}api/oauth2/authorize?{query}"


def safe_next_url(candidate: str | None, prefix: str) -> str:
    """Where to send the browser after login: only paths under our prefix, never off-site."""
    if not candidate:
        return prefix
    if candidate.startswith(("//", "/\\")) or not candidate.startswith(prefix):
        # Absolute URLs, protocol-relative URLs and other servers' paths are all refused.
        return prefix
    return candidate
