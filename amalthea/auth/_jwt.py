"""Signed-JWT validation against an identity provider's JWKS (shared by OIDC and LTI 1.3).

All JOSE work is done by joserfc; this module only decides *which* keys and *which* claims.

Key rotation: providers publish the next key in their JWKS before they sign with it, and drop old
keys later. We cache the key set and refetch it when a token names a ``kid`` we do not know,
at most once per ``min_refetch_interval`` so a stream of forged tokens with random kids cannot
make us hammer the provider.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

#: Asymmetric algorithms only: "none" and HS* (shared secret) are never accepted.
DEFAULT_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
)


class TokenError(Exception):
    """A token failed validation. ``reason`` is a short log-safe description."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnreachableError(Exception):
    """The identity provider could not be reached or answered garbage; message names the URL."""


class JWKSCache:
    """The provider's public keys, fetched from ``jwks_uri`` and refetched on unknown ``kid``."""

    def __init__(self, jwks_uri: str, timeout: float = 10.0, min_refetch_interval: float = 60.0):
        self.jwks_uri = jwks_uri
        self.timeout = timeout
        self.min_refetch_interval = min_refetch_interval
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    async def fetch(self, client: httpx.AsyncClient | None = None) -> KeySet:
        try:
            if client is None:
                async with httpx.AsyncClient(timeout=self.timeout) as c:
                    response = await c.get(self.jwks_uri)
            else:
                response = await client.get(self.jwks_uri, timeout=self.timeout)
            response.raise_for_status()
            self._keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as e:
            raise UnreachableError(f"fetching JWKS {self.jwks_uri} failed: {e!r}") from e
        self._fetched_at = time.monotonic()
        return self._keys

    async def keys(self, client: httpx.AsyncClient | None = None) -> KeySet:
        return self._keys if self._keys is not None else await self.fetch(client)

    def may_refetch(self) -> bool:
        return time.monotonic() - self._fetched_at >= self.min_refetch_interval


async def validate_jwt(
    token: str,
    jwks: JWKSCache,
    *,
    issuer: str,
    audience: str,
    nonce: str | None = None,
    leeway: int = 60,
    algorithms: Collection[str] = DEFAULT_ALGORITHMS,
    client: httpx.AsyncClient | None = None,
) -> dict[str, Any]:
    """Verify signature, ``iss``, ``aud`` (+ ``azp``), ``exp``, ``iat`` and ``nonce``; return claims.

    ``nonce=None`` skips the nonce check (refreshed ID tokens need not carry one).
    Raises TokenError for a bad token, UnreachableError when the JWKS cannot be fetched.
    """
    keys = await jwks.keys(client)
    try:
        try:
            decoded = jwt.decode(token, keys, algorithms=list(algorithms))
        except InvalidKeyIdError:
            if not jwks.may_refetch():
                raise
            log.info("unknown signing key id, refetching %s (key rotation?)", jwks.jwks_uri)
            decoded = jwt.decode(token, await jwks.fetch(client), algorithms=list(algorithms))
    except InvalidKeyIdError as e:
        raise TokenError(f"signed with a key not in {jwks.jwks_uri}: {e}") from e
    except BadSignatureError as e:
        raise TokenError("bad signature") from e
    except (JoseError, ValueError) as e:
        raise TokenError(f"malformed token: {e}") from e

    claims = decoded.claims
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "sub": {"essential": True},
    }
    if nonce is not None:
        options["nonce"] = {"essential": True, "value": nonce}
    try:
        jwt.JWTClaimsRegistry(leeway=leeway, **options).validate(claims)
    except ExpiredTokenError as e:
        raise TokenError("token expired") from e
    except ClaimError as e:
        raise TokenError(f"claim check failed: {e}") from e
    # With several audiences the party the token was issued to must be us (OIDC Core 3.1.3.7).
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != audience:
        raise TokenError(f"azp {claims.get('azp')!r} is not our client id")
    return claims
