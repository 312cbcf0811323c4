"""Bad input for every endpoint answers 4xx with {"status", "message"}, never 5xx.

Wrong types, unknown fields, huge bodies, invalid names, unknown users/servers/groups.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

HUGE = {"usernames": ["x" * 1000] * 2000}  # ~2 MB
CASES = [
    # users
    ("GET", "/users?offset=abc", None),
    ("GET", "/users?limit=1e999", None),
    ("GET", "/users?state=42", None),
    ("GET", "/users?sort=;drop", None),
    ("POST", "/users", {"usernames": "alice"}),
    ("POST", "/users", {"usernames": [1, 2]}),
    ("POST", "/users", {"usernames": []}),
    ("POST", "/users", {"usernames": ["ok"], "bogus": 1}),
    ("POST", "/users", {"usernames": ["bad name!"]}),
    ("POST", "/users", {"usernames": ["fine"], "admin": "yes"}),
    ("POST", "/users", [1, 2, 3]),
    ("POST", "/users", "not json"),
    ("POST", "/users", HUGE),
    ("POST", "/users/" + "a" * 300, None),
    ("POST", "/users/Bad%20Name", None),
    ("POST", "/users/newone", {"admin": "true"}),
    ("GET", "/users/nobody-at-all", None),
    ("PATCH", "/users/nobody-at-all", {"admin": True}),
    ("PATCH", "/users/target", {}),
    ("PATCH", "/users/target", {"name": 5}),
    ("PATCH", "/users/target", {"admin": "no"}),
    ("PATCH", "/users/target", {"groups": ["x"]}),
    ("PATCH", "/users/target", {"name": "Not Valid"}),
    ("PATCH", "/users/target", []),
    ("DELETE", "/users/nobody-at-all", None),
    ("POST", "/users/nobody-at-all/activity", {"last_activity": "2026-01-01T00:00:00Z"}),
    ("POST", "/users/target/activity", {"last_activity": "yesterday-ish"}),
    ("POST", "/users/target/activity", {"last_activity": 5}),
    (
        "POST",
        "/users/target/activity",
        {"servers": {"nope": {"last_activity": "2026-01-01T00:00:00Z"}}},
    ),
    ("POST", "/users/target/activity", {"servers": []}),
    ("POST", "/users/target/activity", {}),
    # servers
    ("GET", "/users/nobody-at-all/server", None),
    ("GET", "/users/target/servers/nothere", None),
    ("PUT", "/users/target/servers/BAD_NAME", {}),
    ("PUT", "/users/target/servers/okname", {"display_name": 5}),
    ("PUT", "/users/target/servers/okname2", {"user_options": "x"}),
    ("PUT", "/users/target/servers/okname3", {"extra": 1}),
    ("PATCH", "/users/target/servers/nothere", {"display_name": "x"}),
    ("PATCH", "/users/target/server", {"name": "x"}),
    ("PATCH", "/users/target/server", {}),
    ("DELETE", "/users/target/server", {"remove": True}),
    ("DELETE", "/users/target/servers/nothere", None),
    ("POST", "/users/nobody-at-all/server", None),
    ("POST", "/users/target/server", [1]),
    ("GET", "/users/target/server/progress", None),
    ("GET", "/users/target/server-logs/nothere", None),
    # tokens
    ("POST", "/users/target/tokens", {"expires_in": "soon"}),
    ("POST", "/users/target/tokens", {"expires_in": -1}),
    ("POST", "/users/target/tokens", {"expires_in": 0}),
    ("POST", "/users/target/tokens", {"scopes": "read:users"}),
    ("POST", "/users/target/tokens", {"scopes": ["not-a-scope"]}),
    ("POST", "/users/target/tokens", {"scopes": ["read:users!bad=x"]}),
    ("POST", "/users/target/tokens", {"scopes": ["read:users"], "roles": ["user"]}),
    ("POST", "/users/target/tokens", {"roles": ["no-such-role"]}),
    ("POST", "/users/target/tokens", {"note": 5}),
    ("POST", "/users/target/tokens", {"note": "x" * 5000}),
    ("POST", "/users/target/tokens", {"unknown": 1}),
    ("POST", "/users/target/tokens", [1]),
    ("POST", "/users/nobody-at-all/tokens", {}),
    ("GET", "/users/target/tokens/a999999", None),
    ("GET", "/users/target/tokens/zzz", None),
    ("GET", "/users/target/tokens/a" + "9" * 40, None),
    ("DELETE", "/users/target/tokens/a999999", None),
    ("GET", "/users/nobody-at-all/tokens", None),
    # groups
    ("GET", "/groups?offset=-x", None),
    ("POST", "/groups", {"groups": "g"}),
    ("POST", "/groups", {"groups": []}),
    ("POST", "/groups", {"groups": ["g-ok"], "users": ["nobody-at-all"]}),
    ("POST", "/groups", {"groups": [" spaced "]}),
    ("POST", "/groups", {"groups": ["x"], "extra": True}),
    ("GET", "/groups/nogroup", None),
    ("POST", "/groups/g-new", {"users": "x"}),
    ("DELETE", "/groups/nogroup", None),
    ("POST", "/groups/nogroup/users", {"users": ["target"]}),
    ("POST", "/groups/existing/users", {}),
    ("POST", "/groups/existing/users", {"users": ["nobody-at-all"]}),
    ("DELETE", "/groups/existing/users", {"users": 5}),
    ("PUT", "/groups/existing/properties", [1, 2]),
    ("PUT", "/groups/nogroup/properties", {}),
    ("GET", "/groups/nogroup/shared", None),
    # shares
    ("GET", "/shares/nobody-at-all", None),
    ("GET", "/shares/target/nothere", None),
    ("POST", "/shares/target/", {}),
    ("POST", "/shares/target/", {"user": "x", "group": "y"}),
    ("POST", "/shares/target/", {"user": "nobody-at-all"}),
    ("POST", "/shares/target/", {"user": "other", "scopes": ["read:users"]}),
    ("POST", "/shares/target/", {"user": "other", "scopes": ["access:servers!server=other/"]}),
    ("POST", "/shares/target/", {"user": "other", "scopes": ["admin:users"]}),
    ("POST", "/shares/target/", {"user": "other", "scopes": "x"}),
    ("POST", "/shares/target/", {"user": "other", "extra": 1}),
    ("POST", "/shares/target/", {"user": "target"}),
    ("PATCH", "/shares/target/", {"user": 5}),
    ("POST", "/shares/target", None),
    ("DELETE", "/shares/nobody-at-all/", None),
    ("POST", "/share-codes/target/", {"expires_in": 10}),
    ("POST", "/share-codes/target/", {"expires_in": "x"}),
    ("POST", "/share-codes/target/", {"expires_in": 10**12}),
    ("POST", "/share-codes/target/", {"scopes": ["bogus"]}),
    ("POST", "/share-codes/target/nothere", {}),
    ("DELETE", "/share-codes/target/?code=nope-nope-nope", None),
    ("DELETE", "/share-codes/target/?id=sc_x", None),
    ("DELETE", "/share-codes/target/?id=sc_99999", None),
    ("POST", "/share-codes/target", {}),
    ("GET", "/users/nobody-at-all/shared", None),
    ("GET", "/users/target/shared/nobody/", None),
    ("DELETE", "/users/target/shared/nobody/", None),
    ("GET", "/groups/existing/shared/nobody/", None),
    # services, proxy, shutdown, unknown
    ("GET", "/services/nope", None),
    ("POST", "/services/x", {"command": ["sleep", "1"]}),
    ("POST", "/services/x", {"url": "ftp://x"}),
    ("POST", "/services/x", {"url": 5}),
    ("POST", "/services/x", {"whatever": 1}),
    ("POST", "/services/x", {"oauth_client_allowed_scopes": ["bogus"]}),
    ("DELETE", "/services/nope", None),
    ("PATCH", "/proxy", {"api_url": 5}),
    ("PATCH", "/proxy", {"api_url": "not a url"}),
    ("PATCH", "/proxy", [1]),
    ("POST", "/shutdown", {"servers": "yes"}),
    ("POST", "/shutdown", {"unknown": True}),
    ("GET", "/no/such/endpoint", None),
    ("POST", "/users/admin-access-test/admin-access", None),
]


@pytest.fixture(scope="module")
def prepared(admin):
    for name in ("target", "other"):
        admin.post(f"/users/{name}")
    admin.post("/groups/existing")
    return admin


@pytest.mark.parametrize(
    ("method", "path", "body"), CASES, ids=[f"{m} {p[:60]} {str(b)[:30]}" for m, p, b in CASES]
)
def test_bad_input_is_4xx_json(prepared, method, path, body):
    kwargs = {}
    if isinstance(body, str):
        kwargs["content"] = body
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    r = prepared.request(method, path, **kwargs)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        assert set(body) == {"status", "message"}, body
        assert body["status"] == r.status_code
    else:  # e.g. 405 from tornado for methods a resource doesn't have
        assert r.status_code == 405
