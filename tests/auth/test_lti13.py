"""LTI 1.3 launches signed with a generated platform key, JWKS served on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest
from auth_web_helpers import serve_hub, serve_jwks
from joserfc import jwt
from joserfc.jwk import RSAKey

from amalthea.auth.lti13 import LTI, ROLES_CLAIM, LTI13Authenticator

ISS = "https://lms.example.edu"
CLIENT_ID = "hub-tool-123"
DEPLOYMENT = "deploy-1"
AUTHORIZE = "https://lms.example.edu/api/lti/authorize_redirect"
PLATFORM_KEY = RSAKey.generate_key(
    2048, parameters={"kid": "platform-1", "alg": "RS256", "use": "sig"}
)
FORGER_KEY = RSAKey.generate_key(
    2048, parameters={"kid": "platform-1", "alg": "RS256", "use": "sig"}
)
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


@pytest.fixture
async def hub():
    box = {"jwks": {"keys": [PLATFORM_KEY.as_dict(private=False)]}}
    async with serve_jwks(box) as jwks_url:
        auth = LTI13Authenticator(
            issuer=ISS,
            client_id=CLIENT_ID,
            deployment_ids={DEPLOYMENT},
            authorize_url=AUTHORIZE,
            jwks_uri=jwks_url,
            username_claim="email",
            allow_all=True,
        )
        await auth.startup()
        async with serve_hub(auth) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
            yield auth, client, url


def launch_token(nonce: str, key: RSAKey = PLATFORM_KEY, roles=(LEARNER,), **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": CLIENT_ID,
        "sub": "u-42",
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "email": "Student@Example.edu",
        "name": "Stu Dent",
        LTI + "version": "1.3.0",
        LTI + "message_type": "LtiResourceLinkRequest",
        LTI + "deployment_id": DEPLOYMENT,
        LTI + "target_link_uri": "https://hub.example.org/hub/",
        LTI + "resource_link": {"id": "rl-1"},
        LTI + "context": {"id": "course-101", "label": "PHY101", "title": "Physics"},
        ROLES_CLAIM: list(roles),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


async def initiate(client: httpx.AsyncClient, url: str, method: str = "POST") -> dict[str, str]:
    data = {
        "iss": ISS,
        "login_hint": "u-42",
        "target_link_uri": f"{url}/hub/spawn?course=1",
        "lti_message_hint": "m-1",
        "client_id": CLIENT_ID,
        "lti_deployment_id": DEPLOYMENT,
    }
    if method == "POST":
        r = await client.post("/hub/lti13/login", data=data)
    else:
        r = await client.get("/hub/lti13/login", params=data)
    assert r.status_code == 302, r.text
    location = httpx.URL(r.headers["location"])
    assert str(location).startswith(AUTHORIZE + "?")
    params = dict(location.params)
    assert params["response_type"] == "id_token" and params["response_mode"] == "form_post"
    assert params["redirect_uri"] == f"{url}/hub/lti13/launch"
    assert params["login_hint"] == "u-42" and params["lti_message_hint"] == "m-1"
    return params


async def launch(client, state, token):
    return await client.post("/hub/lti13/launch", data={"state": state, "id_token": token})


async def test_signed_launch_accepted(hub):
    _, client, url = hub
    params = await initiate(client, url)
    r = await launch(client, params["state"], launch_token(params["nonce"], roles=(INSTRUCTOR,)))
    assert r.status_code == 200, r.text
    body = r.json()
    result = body["result"]
    assert result["name"] == "student@example.edu"
    assert result["groups"] == ["course-101"]
    assert result["admin"] is True
    assert body["next_url"] == "/hub/spawn?course=1"


async def test_learner_is_not_admin_and_get_initiation_works(hub):
    _, client, url = hub
    params = await initiate(client, url, method="GET")
    r = await launch(client, params["state"], launch_token(params["nonce"]))
    assert r.status_code == 200 and r.json()["result"]["admin"] is False


async def test_replayed_launch_rejected(hub):
    _, client, url = hub
    params = await initiate(client, url)
    token = launch_token(params["nonce"])
    assert (await launch(client, params["state"], token)).status_code == 200
    # the very same POST again
    r = await launch(client, params["state"], token)
    assert r.status_code == 400 and "already used" in r.text
    # the same token (same nonce) under a fresh state
    fresh = await initiate(client, url)
    assert (await launch(client, fresh["state"], token)).status_code == 400


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-tool"},
        {"iss": "https://evil.example.edu"},
        {"exp": int(time.time()) - 3600},
        {LTI + "deployment_id": "deploy-unknown"},
        {LTI + "message_type": "LtiSubmissionReviewRequest"},
        {LTI + "version": "1.1"},
        {"nonce": "not-the-one"},
    ],
    ids=["aud", "iss", "expired", "deployment", "message_type", "version", "nonce"],
)
async def test_tampered_launch_rejected(hub, overrides):
    _, client, url = hub
    params = await initiate(client, url)
    nonce = overrides.pop("nonce", params["nonce"])
    r = await launch(client, params["state"], launch_token(nonce, **overrides))
    assert r.status_code == 400 and "not valid" in r.text


async def test_bad_signature_and_modified_payload_rejected(hub, caplog):
    _, client, url = hub
    params = await initiate(client, url)
    r = await launch(client, params["state"], launch_token(params["nonce"], key=FORGER_KEY))
    assert r.status_code == 400
    params = await initiate(client, url)
    header, _, sig = launch_token(params["nonce"]).split(".")
    _, payload, _ = launch_token(params["nonce"], roles=(INSTRUCTOR,)).split(".")
    r = await launch(client, params["state"], f"{header}.{payload}.{sig}")
    assert r.status_code == 400
    assert "bad signature" in caplog.text


async def test_unknown_platform_and_garbage(hub):
    _, client, url = hub
    r = await client.post("/hub/lti13/login", data={"iss": "https://other.lms", "login_hint": "x"})
    assert r.status_code == 400 and "not connected" in r.text
    r = await launch(client, "made-up", "not.a.jwt")
    assert r.status_code == 400
    params = await initiate(client, url)
    r = await launch(client, params["state"], "not.a.jwt")
    assert r.status_code == 400


async def test_platform_jwks_down_is_503(hub):
    auth, client, url = hub
    auth.jwks_uri = "http://127.0.0.1:9/jwks"
    auth._jwks = None
    params = await initiate(client, url)
    r = await launch(client, params["state"], launch_token(params["nonce"]))
    assert r.status_code == 503 and "unreachable" in r.text


def test_startup_config_errors():
    import asyncio

    with pytest.raises(ValueError, match="deployment_ids"):
        asyncio.run(
            LTI13Authenticator(issuer=ISS, client_id="c", authorize_url="a", jwks_uri="j").startup()
        )
    with pytest.raises(ValueError, match="client_id"):
        asyncio.run(LTI13Authenticator(issuer=ISS).startup())
