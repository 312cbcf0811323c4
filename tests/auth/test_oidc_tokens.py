"""ID token validation with tokens we sign ourselves: tampering, expiry, nonce, key rotation."""

from __future__ import annotations

import time

import pytest
from auth_web_helpers import serve_jwks
from joserfc import jwt
from joserfc.jwk import RSAKey

from amalthea.auth._jwt import JWKSCache, TokenError, validate_jwt
from amalthea.auth.base import AuthError
from amalthea.auth.oidc import OIDCAuthenticator

ISS = "https://idp.example.org"
AUD = "hub-client"


def make_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


KEY1 = make_key("k1")
KEY2 = make_key("k2")
OTHER = make_key("k1")  # same kid, different key: a forger's key


def sign(key: RSAKey, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "nonce": "n1"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def public_jwks(*keys: RSAKey) -> dict:
    return {"keys": [k.as_dict(private=False) for k in keys]}


@pytest.fixture
async def jwks():
    box = {"jwks": public_jwks(KEY1)}
    async with serve_jwks(box) as url:
        yield box, JWKSCache(url, timeout=5, min_refetch_interval=0)


async def check(cache, token, nonce="n1"):
    return await validate_jwt(token, cache, issuer=ISS, audience=AUD, nonce=nonce, leeway=30)


async def test_valid_token(jwks):
    _, cache = jwks
    claims = await check(cache, sign(KEY1))
    assert claims["sub"] == "alice"


@pytest.mark.parametrize(
    ("token_args", "reason"),
    [
        ({"aud": "someone-else"}, "claim check failed"),
        ({"iss": "https://evil.example.org"}, "claim check failed"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nonce": "other"}, "claim check failed"),
        ({"nonce": None}, "claim check failed"),
        ({"iat": int(time.time()) + 3600}, "claim check failed"),
        ({"exp": None}, "claim check failed"),
        ({"aud": [AUD, "other"], "azp": "other"}, "azp"),
    ],
)
async def test_bad_claims_rejected(jwks, token_args, reason):
    _, cache = jwks
    with pytest.raises(TokenError, match=reason):
        await check(cache, sign(KEY1, **token_args))


async def test_bad_signature_rejected(jwks):
    _, cache = jwks
    with pytest.raises(TokenError, match="bad signature"):
        await check(cache, sign(OTHER))
    # payload swapped after signing
    header, _, sig = sign(KEY1).split(".")
    _, payload, _ = sign(KEY1, sub="mallory").split(".")
    with pytest.raises(TokenError, match="bad signature"):
        await check(cache, f"{header}.{payload}.{sig}")


async def test_alg_none_and_hmac_rejected(jwks):
    _, cache = jwks
    from joserfc.jwk import OctKey

    hs = jwt.encode({"alg": "HS256", "kid": "k1"}, {"iss": ISS}, OctKey.generate_key(256))
    with pytest.raises(TokenError):
        await check(cache, hs)
    with pytest.raises(TokenError):
        await check(cache, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")


async def test_leeway_accepts_small_clock_skew(jwks):
    _, cache = jwks
    await check(cache, sign(KEY1, exp=int(time.time()) - 10, iat=int(time.time()) + 10))


async def test_key_rotation_refetches_jwks(jwks):
    box, cache = jwks
    await check(cache, sign(KEY1))
    assert box["hits"] == 1
    box["jwks"] = public_jwks(KEY1, KEY2)  # the IdP publishes a new key and signs with it
    await check(cache, sign(KEY2))
    assert box["hits"] == 2
    await check(cache, sign(KEY2))
    assert box["hits"] == 2  # cached


async def test_unknown_kid_refetch_is_rate_limited(jwks):
    box, cache = jwks
    cache.min_refetch_interval = 3600
    await check(cache, sign(KEY1))
    with pytest.raises(TokenError, match="not in"):
        await check(cache, sign(make_key("random-kid")))
    assert box["hits"] == 1


async def test_authenticator_turns_token_errors_into_400(jwks):
    _, cache = jwks
    auth = OIDCAuthenticator(
        issuer=ISS, client_id=AUD, authorize_url="x", token_url="x", jwks_uri=cache.jwks_uri
    )
    with pytest.raises(AuthError) as e:
        await auth.validate_id_token(sign(KEY1, aud="nope"), nonce="n1")
    assert e.value.status == 400 and "ID token rejected" in e.value.log_message
    assert (await auth.validate_id_token(sign(KEY1), nonce="n1"))["sub"] == "alice"
