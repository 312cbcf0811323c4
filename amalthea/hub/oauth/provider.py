"""Authorization-code grant with PKCE: codes, token exchange, client checks.

Codes are single use, valid ``code_ttl`` seconds, stored as SHA-256 hashes and bound to the
client, redirect URI, user, browser session, scopes and PKCE challenge. Errors are
:class:`OAuthError`; ``json_body`` is the RFC 6749 error object for the token endpoint, the
authorize endpoint renders ``message`` as an HTML page (never redirecting to an unverified URI).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select

from amalthea.hub.clock import utcnow
from amalthea.hub.security.identity import Identity
from amalthea.hub.security.tokens import hash_token, new_code, verify_hashed
from amalthea.hub.store import queries
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import APIToken, OAuthClient, OAuthCode, Service

__all__ = ["AuthorizeRequest", "OAuthError", "OAuthProvider"]


class OAuthError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    @property
    def json_body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.message}


@dataclass
class AuthorizeRequest:
    client: OAuthClient
    redirect_uri: str
    scopes: list[str]
    state: str
    code_challenge: str | None
    code_challenge_method: str | None
    needs_confirmation: bool


def _access_target(client: OAuthClient) -> tuple[str, dict[str, str]] | None:
    """The access scope that guards this client, as (scope, covers() kwargs)."""
    for scope in client.allowed_scopes:
        base, _, filt = scope.partition("!")
        kind, _, value = filt.partition("=")
        if base == "access:servers" and kind == "server":
            return base, {"server": value}
        if base == "access:services" and kind == "service":
            return base, {"service": value}
    return None


class OAuthProvider:
    def __init__(
        self, db: Database, token_expires_in: int = 1209600, code_ttl: int = 300,
        require_pkce: bool = False,
    ) -> None:  # fmt: skip
        self.db = db
        self.token_expires_in = token_expires_in
        self.code_ttl = code_ttl
        self.require_pkce = require_pkce

    async def check_authorize(self, who: Identity, args: dict[str, str]) -> AuthorizeRequest:
        client_id = args.get("client_id", "")
        redirect_uri = args.get("redirect_uri", "")
        if args.get("response_type", "code") != "code":
            raise OAuthError(
                400, "unsupported_response_type", "Only response_type=code is supported."
            )
        async with self.db.session() as s:
            client = (
                await s.execute(select(OAuthClient).where(OAuthClient.identifier == client_id))
            ).scalar()
        if client is None or not client.redirect_uri:
            raise OAuthError(400, "invalid_client", f"Unknown OAuth client {client_id[:100]!r}.")
        if redirect_uri and redirect_uri != client.redirect_uri:
            raise OAuthError(
                400, "invalid_request", "The redirect_uri does not match the one registered."
            )
        target = _access_target(client)
        if target is None or not who.can(target[0], **target[1]):
            raise OAuthError(
                403, "access_denied",
                f"You do not have permission to access {client.description or client_id}.",
            )  # fmt: skip
        method = args.get("code_challenge_method") or None
        challenge = args.get("code_challenge") or None
        if challenge and (method or "plain") not in ("S256", "plain"):
            raise OAuthError(400, "invalid_request", "code_challenge_method must be S256 or plain.")
        if self.require_pkce and not challenge:
            raise OAuthError(400, "invalid_request", "PKCE (code_challenge) is required.")
        scopes = sorted({*client.allowed_scopes, f"read:users:name!user={who.name}",
                         f"read:users:groups!user={who.name}"})  # fmt: skip
        return AuthorizeRequest(
            client, client.redirect_uri, scopes, args.get("state", ""), challenge,
            (method or "plain") if challenge else None,
            not await self._preapproved(who, client, target, scopes),
        )  # fmt: skip

    async def _preapproved(
        self, who: Identity, client: OAuthClient, target: tuple[str, dict[str, str]],
        scopes: list[str],
    ) -> bool:  # fmt: skip
        """Protocol §8.4: skip the confirmation page for the user's own servers, services with
        ``oauth_no_confirm``, and when a live token of this user for this client already
        carries every requested scope (the user said yes before; asking again is noise)."""
        base, kw = target
        if base == "access:servers" and kw["server"].split("/", 1)[0] == who.name:
            return True
        async with self.db.session() as s:
            if base == "access:services":
                no_confirm = (
                    await s.execute(
                        select(Service.oauth_no_confirm).where(Service.name == kw["service"])
                    )
                ).scalar()
                if no_confirm:
                    return True
            granted = (
                await s.execute(
                    select(APIToken.scopes).where(
                        APIToken.user_id == who.id,
                        APIToken.client_id == client.identifier,
                        or_(APIToken.expires_at.is_(None), APIToken.expires_at > utcnow()),
                    )
                )
            ).scalars()
            wanted = set(scopes)
            return any(wanted <= set(have or ()) for have in granted)

    async def issue_code(self, who: Identity, req: AuthorizeRequest) -> str:
        code = new_code()
        async with self.db.session() as s:
            s.add(
                OAuthCode(
                    client_id=req.client.identifier,
                    code=hash_token(code),
                    expires_at=int(time.time()) + self.code_ttl,
                    redirect_uri=req.redirect_uri,
                    session_id=who.session_id,
                    user_id=who.id,
                    scopes=req.scopes,
                    code_challenge=req.code_challenge,
                    code_challenge_method=req.code_challenge_method,
                )
            )
            await s.commit()
        return code

    async def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "authorization_code":
            raise OAuthError(400, "unsupported_grant_type", "Only authorization_code is supported.")
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        async with self.db.session() as s:
            client = (
                await s.execute(select(OAuthClient).where(OAuthClient.identifier == client_id))
            ).scalar()
            if client is None or not client.secret or not verify_hashed(secret, client.secret):
                raise OAuthError(401, "invalid_client", "Client authentication failed.")
            row = (
                await s.execute(
                    select(OAuthCode).where(OAuthCode.code == hash_token(form.get("code", "")))
                )
            ).scalar()
            if row is None or row.client_id != client_id or row.expires_at < time.time():
                raise OAuthError(400, "invalid_grant", "The code is invalid, used or expired.")
            # single use: delete before any further check so a failed attempt burns it too
            await s.execute(delete(OAuthCode).where(OAuthCode.id == row.id))
            await s.commit()
            if form.get("redirect_uri", row.redirect_uri) != row.redirect_uri:
                raise OAuthError(400, "invalid_grant", "redirect_uri does not match the code's.")
            if row.code_challenge and not _pkce_ok(
                row.code_challenge, row.code_challenge_method, form.get("code_verifier", "")
            ):
                raise OAuthError(400, "invalid_grant", "The PKCE code_verifier does not match.")
            if self.require_pkce and not row.code_challenge:
                raise OAuthError(400, "invalid_grant", "PKCE is required.")
            token, _ = await queries.create_token(
                s, user_id=row.user_id, note=f"OAuth token for {client.description or client_id}",
                scopes=list(row.scopes), expires_in=self.token_expires_in, client_id=client_id,
                session_id=row.session_id,
            )  # fmt: skip
            await s.commit()
        return {
            "access_token": token,
            "expires_in": self.token_expires_in,
            "token_type": "Bearer",
            "scope": " ".join(row.scopes),
        }


def _pkce_ok(challenge: str, method: str | None, verifier: str) -> bool:
    if not verifier:
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)
