"""OAuth state handling and PKCE (amalthea.singleuser.oauth), without sockets."""

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from amalthea.singleuser.oauth import (
    OAuthStateError,
    StateStore,
    authorize_url,
    code_challenge,
    safe_next_url,
)


def test_pkce_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert code_challenge(verifier) == expected.decode()


def test_state_roundtrip_is_single_use() -> None:
    store = StateStore()
    state, login = store.begin("/user/alice/lab")
    assert store.peek(state) is login
    assert 43 <= len(login.verifier) <= 128
    assert store.finish(state, state).next_url == "/user/alice/lab"
    with pytest.raises(OAuthStateError) as exc:
        store.finish(state, state)
    assert exc.value.status == 403


@pytest.mark.parametrize(
    ("state", "cookie", "status"),
    [
        (None, None, 400),  # no state parameter
        ("", "x", 400),
        ("forged", "forged", 403),  # not a login started here
    ],
)
def test_bad_states(state: str | None, cookie: str | None, status: int) -> None:
    store = StateStore()
    store.begin("/x/")
    with pytest.raises(OAuthStateError) as exc:
        store.finish(state, cookie)
    assert exc.value.status == status


def test_state_cookie_must_match_and_be_present() -> None:
    store = StateStore()
    state, _ = store.begin("/p/")
    other, _ = store.begin("/p/")
    with pytest.raises(OAuthStateError) as exc:
        store.finish(state, other)  # another tab's cookie
    assert exc.value.status == 403
    with pytest.raises(OAuthStateError) as exc:
        store.finish(state, None)
    assert exc.value.status == 400
    assert store.finish(state, state).next_url == "/p/"  # still usable after failures


def test_states_expire_and_are_bounded() -> None:
    store = StateStore(ttl=0.0)
    state, _ = store.begin("/p/")
    with pytest.raises(OAuthStateError):
        store.peek(state)
    small = StateStore(max_pending=3)
    states = [small.begin("/p/")[0] for _ in range(5)]
    assert len(small) == 3
    with pytest.raises(OAuthStateError):
        small.peek(states[0])


def test_authorize_url() -> None:
    url = authorize_url(
        hub_host="",
        hub_prefix="/hub/",
        client_id="jupyterhub-user-alice",
        redirect_uri="/user/alice/oauth_callback",
        state="s1",
        challenge="c1",
    )
    parts = urlsplit(url)
    assert parts.path == "/hub/api/oauth2/authorize"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q == {
        "client_id": "jupyterhub-user-alice",
        "redirect_uri": "/user/alice/oauth_callback",
        "response_type": "code",
        "code_challenge": "c1",
        "code_challenge_method": "S256",
        "state": "s1",
    }


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("/user/alice/lab?x=1", "/user/alice/lab?x=1"),
        (None, "/user/alice/"),
        ("https://evil.example/user/alice/", "/user/alice/"),
        ("//evil.example/user/alice/", "/user/alice/"),
        ("/user/bob/lab", "/user/alice/"),
        ("/\\evil.example", "/user/alice/"),
    ],
)
def test_safe_next_url(candidate: str | None, expected: Any) -> None:
    assert safe_next_url(candidate, "/user/alice/") == expected
