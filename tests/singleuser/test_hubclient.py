"""Hub client and identity cache against the in-process fake hub (no server process)."""

from __future__ import annotations

import time

import pytest
from fakehub import FakeHub

from amalthea.singleuser.hubclient import HubClient, HubUnavailable, OAuthExchangeError, check_in
from amalthea.singleuser.identity import IdentityCache


@pytest.fixture
def client(fake_hub: FakeHub) -> HubClient:
    fake_hub.state.tokens["good"] = {"name": "alice", "scopes": []}
    return HubClient(f"{fake_hub.url}/hub/api/", fake_hub.state.server_token, timeout=5)


def test_check_in_reads_the_version(fake_hub: FakeHub) -> None:
    assert check_in(f"{fake_hub.url}/hub/api", delays=()) == "6.1.1"


def test_check_in_gives_up_with_a_useful_message() -> None:
    started = time.monotonic()
    with pytest.raises(HubUnavailable, match=r"JUPYTERHUB_API_URL.*2 attempts"):
        check_in("http://127.0.0.1:9/hub/api", delays=(0.05,))
    assert time.monotonic() - started < 5


async def test_identify(client: HubClient) -> None:
    model = await client.identify("good")
    assert model is not None and model["name"] == "alice"
    assert await client.identify("bad") is None  # 403 means "not authenticated"


async def test_exchange_refused_and_unreachable(client: HubClient) -> None:
    with pytest.raises(OAuthExchangeError, match="invalid_grant"):
        await client.exchange_code(client_id="c", code="nope", redirect_uri="/r", code_verifier="v")
    down = HubClient("http://127.0.0.1:9/hub/api", "t", timeout=2)
    with pytest.raises(HubUnavailable):
        await down.identify("good")


async def test_owner_groups(client: HubClient, fake_hub: FakeHub) -> None:
    fake_hub.state.groups["alice"] = ["lab", "gpu"]
    assert await client.user_groups("alice") == ["lab", "gpu"]
    assert await HubClient(client.api_url, "wrong").user_groups("alice") == []


def test_identity_cache_expires_and_forgets() -> None:
    cache = IdentityCache(ttl=60)
    key = cache.key("session", "secret-token")
    assert "secret-token" not in repr(key)
    cache.put(key, {"name": "alice"})
    assert cache.get(key) == {"name": "alice"}
    assert cache.get(cache.key("other-session", "secret-token")) is None
    cache.forget_token("secret-token")
    assert cache.get(key) is None
    short = IdentityCache(ttl=-1)
    short.put(key, {"name": "alice"})
    assert short.get(key) is None
    bounded = IdentityCache(max_entries=2)
    for i in range(5):
        bounded.put(bounded.key("s", str(i)), {"i": i})
    assert len(bounded._entries) == 2
