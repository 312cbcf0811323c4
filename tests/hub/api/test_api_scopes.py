"""Scope x endpoint x own/other user, table-driven (protocol §4).

A user ``power`` holds every scope (config role), so a token of theirs carries exactly the
scopes it asks for; ``victim`` (member of group ``grp``) and ``bystander`` are the "other"
users. Each row: token scopes, request, expected status.
"""

from __future__ import annotations

import httpx
import pytest

from amalthea.hub.rbac.scopes import all_scopes
from amalthea.testing.hub import start_hub

pytestmark = pytest.mark.slow

EVERYTHING = [s for s in all_scopes() if s not in ("self", "inherit", "shutdown")]
CONFIG = f"""
c.Amalthea.allow_named_servers = True
c.Amalthea.load_roles = [{{"name": "everything", "scopes": {EVERYTHING!r}, "users": ["power"]}}]
"""

V, B, P = "victim", "bystander", "power"
ROWS = [
    # (token scopes, method, path, body, expected status)
    ([], "GET", "/users", None, 403),
    ([], "GET", "/user", None, 200),
    (["list:users"], "GET", "/users", None, 200),
    (["list:users!user=victim"], "GET", "/users", None, 200),
    (["list:users!server=victim/"], "GET", "/users", None, 403),
    (["read:users!user=victim"], "GET", f"/users/{V}", None, 200),
    (["read:users!user=victim"], "GET", f"/users/{B}", None, 404),
    (["read:users!user=victim"], "GET", "/users", None, 403),
    (["read:users!group=grp"], "GET", f"/users/{V}", None, 200),
    (["read:users!group=grp"], "GET", f"/users/{B}", None, 404),
    (["read:users:name"], "GET", f"/users/{B}", None, 200),
    (["read:users:activity!user=victim"], "GET", f"/users/{V}", None, 200),
    (["admin:users"], "GET", f"/users/{B}", None, 200),  # expansion: admin:users ⊃ read:users
    (["admin:users"], "POST", "/users/newbyadminusers", None, 201),
    (["users"], "POST", "/users/newbyusers", None, 403),
    (["admin:users"], "PATCH", f"/users/{B}", {"admin": True}, 403),  # granting admin needs admin
    (["delete:users!user=bystander"], "DELETE", f"/users/{V}", None, 404),
    (["read:servers!server=victim/"], "GET", f"/users/{V}/server", None, 200),
    (["read:servers!server=victim/"], "GET", f"/users/{B}/server", None, 404),
    (["read:servers!user=victim"], "GET", f"/users/{V}/server", None, 200),
    (["servers!user=victim"], "GET", f"/users/{V}/server", None, 200),  # servers ⊃ read:servers
    (["delete:servers!user=victim"], "DELETE", f"/users/{V}/server", None, 204),
    (["delete:servers!user=victim"], "DELETE", f"/users/{B}/server", None, 404),
    (["read:servers"], "DELETE", f"/users/{V}/server", None, 403),
    (["start:servers!user=victim"], "PUT", f"/users/{V}/servers/scoped", {}, 201),
    (["read:servers!user=victim"], "PUT", f"/users/{V}/servers/nope", {}, 403),
    (["tokens!user=victim"], "GET", f"/users/{V}/tokens", None, 200),
    (["tokens!user=victim"], "POST", f"/users/{V}/tokens", {}, 201),
    (["tokens!group=grp"], "POST", f"/users/{V}/tokens", {}, 201),
    (["read:tokens!user=victim"], "POST", f"/users/{V}/tokens", {}, 403),
    (["read:tokens!user=victim"], "GET", f"/users/{B}/tokens", None, 404),
    (
        ["users:activity!user=victim"],
        "POST",
        f"/users/{V}/activity",
        {"last_activity": "2026-01-01T00:00:00Z"},
        200,
    ),
    (
        ["users:activity!user=victim"],
        "POST",
        f"/users/{B}/activity",
        {"last_activity": "2026-01-01T00:00:00Z"},
        404,
    ),
    (["list:groups"], "GET", "/groups", None, 200),
    (["list:groups!group=grp"], "GET", "/groups", None, 200),
    ([], "GET", "/groups", None, 403),
    (["read:groups!group=grp"], "GET", "/groups/grp", None, 200),
    (["read:groups!group=grp"], "GET", "/groups/other", None, 404),
    (["admin:groups"], "POST", "/groups/madebyscope", None, 201),
    (["groups"], "POST", "/groups/notmade", None, 403),
    (["groups!group=grp"], "PUT", "/groups/grp/properties", {"x": 1}, 200),
    (["groups!group=grp"], "PUT", "/groups/other/properties", {"x": 1}, 404),
    (["delete:groups!group=other"], "DELETE", "/groups/grp", None, 404),
    (["read:hub"], "GET", "/info", None, 200),
    ([], "GET", "/info", None, 403),
    (["proxy"], "GET", "/proxy", None, 200),
    (["read:users"], "GET", "/proxy", None, 403),
    (["list:services"], "GET", "/services", None, 200),
    ([], "GET", "/services", None, 403),
    (["read:shares!user=victim"], "GET", f"/shares/{V}", None, 200),
    (["read:shares!user=victim"], "GET", f"/shares/{B}", None, 404),
    (["shares!user=victim"], "GET", f"/shares/{V}", None, 200),  # shares ⊃ read:shares
    (["shares!user=victim", "read:users:name"], "POST", f"/shares/{V}/", {"user": B}, 200),
    (["shares!user=victim"], "POST", f"/shares/{V}/", {"user": B}, 403),  # can't read B's name
    (["shares!user=victim", "read:users:name"], "POST", f"/shares/{B}/", {"user": V}, 404),
    (["read:users:shares!user=bystander"], "GET", f"/users/{B}/shared", None, 200),
    (["read:users:shares!user=bystander"], "GET", f"/users/{V}/shared", None, 404),
    (["users:shares!user=bystander"], "GET", f"/users/{B}/shared", None, 200),
    (["read:groups:shares!group=grp"], "GET", "/groups/grp/shared", None, 200),
    (["read:shares!server=victim/"], "GET", f"/share-codes/{V}/", None, 200),
    (["read:shares!server=victim/"], "GET", f"/share-codes/{V}/other", None, 404),
    (["admin:services"], "GET", "/services/nothere", None, 404),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    hub = start_hub(tmp_path_factory.mktemp("scopes"), config=CONFIG)
    admin = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30)
    for name in (V, B, P):
        if admin.get(f"/users/{name}").status_code == 404:
            assert admin.post(f"/users/{name}").status_code == 201
    assert admin.post("/groups", json={"groups": ["grp", "other"], "users": [V]}).status_code == 201
    yield hub, admin
    admin.close()
    hub.stop()


def _token(admin, scopes):
    r = admin.post(f"/users/{P}/tokens", json={"scopes": scopes} if scopes else {"scopes": []})
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.mark.parametrize(
    ("scopes", "method", "path", "body", "expected"),
    ROWS,
    ids=[f"{'+'.join(r[0]) or 'none'}-{r[1]}-{r[2]}" for r in ROWS],
)
def test_scope_table(env, scopes, method, path, body, expected):
    hub, admin = env
    token = _token(admin, scopes)
    with httpx.Client(
        base_url=hub.api_url, headers={"Authorization": f"token {token}"}, timeout=30
    ) as c:
        r = c.request(method, path, json=body)
    assert r.status_code == expected, r.text
    if expected >= 400:
        assert set(r.json()) == {"status", "message"}


def test_vertical_filtering(env):
    hub, admin = env
    token = _token(admin, ["read:users:name"])
    with httpx.Client(base_url=hub.api_url, headers={"Authorization": f"token {token}"}) as c:
        model = c.get(f"/users/{B}").json()
    assert set(model) == {"kind", "name", "admin", "user_info"}


def test_own_user_self_scope(env):
    hub, admin = env
    name = "selfish"
    admin.post(f"/users/{name}")
    token = admin.post(f"/users/{name}/tokens", json={}).json()["token"]
    with httpx.Client(base_url=hub.api_url, headers={"Authorization": f"token {token}"}) as c:
        assert c.get(f"/users/{name}").status_code == 200
        assert c.get(f"/users/{V}").status_code == 404
        assert c.get(f"/users/{name}/tokens").status_code == 200
        assert c.post(f"/users/{name}/tokens", json={}).status_code == 201
        assert c.delete(f"/users/{name}/server").status_code == 204
        assert c.get("/users").status_code == 403
        me = c.get("/user").json()
        assert f"servers!user={name}" in me["scopes"] and "read:users" not in me["scopes"]


def test_role_change_applies_without_restart(env):
    """Adding a user to a group with a role, then removing them, changes their token at once."""
    hub, admin = env
    token = _token(admin, ["inherit"])
    name = "grouped"
    admin.post(f"/users/{name}")
    utoken = admin.post(f"/users/{name}/tokens", json={}).json()["token"]
    with httpx.Client(base_url=hub.api_url, headers={"Authorization": f"token {utoken}"}) as c:
        assert c.get(f"/users/{V}").status_code == 404
        # share victim's server with the group: membership brings the share's scope
        assert admin.post(f"/shares/{V}/", json={"group": "other"}).status_code == 200
        admin.post("/groups/other/users", json={"users": [name]})
        scopes = c.get("/user").json()["scopes"]
        assert f"access:servers!server={V}/" in scopes
        admin.request("DELETE", "/groups/other/users", json={"users": [name]})
        scopes = c.get("/user").json()["scopes"]
        assert f"access:servers!server={V}/" not in scopes
    del token
