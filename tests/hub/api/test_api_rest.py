"""REST behaviours of users, tokens, groups, services, proxy, shares (protocol §5, §6, §12, §17)."""

from __future__ import annotations

import httpx
import pytest

from tests.hub.api.conftest import client, make_user, token_for, unique

pytestmark = pytest.mark.slow
PAGED = {"Accept": "application/jupyterhub-pagination+json"}


def test_api_root_and_health(hub):
    assert httpx.get(hub.api_url).json()["version"]
    assert httpx.get(hub.api_url + "/health").status_code == 200


def test_no_credentials_is_403(hub):
    r = httpx.get(hub.api_url + "/users")
    assert r.status_code == 403
    assert r.json() == {"status": 403, "message": "Missing or invalid credentials."}


def test_create_user_twice_is_409(admin):
    name = make_user(admin)
    r = admin.post(f"/users/{name}")
    assert r.status_code == 409
    assert r.json() == {"status": 409, "message": f"User {name} already exists"}


def test_create_many_and_all_exist(admin):
    a, b = unique("m"), unique("m")
    r = admin.post("/users", json={"usernames": [a, b]})
    assert r.status_code == 201 and [u["name"] for u in r.json()] == [a, b]
    assert admin.post("/users", json={"usernames": [a, b]}).status_code == 409
    r = admin.post("/users", json={"usernames": [a, unique("m")]})
    assert r.status_code == 201 and len(r.json()) == 1


def test_pagination_envelope(admin):
    prefix = unique("pg")
    for i in range(4):
        make_user(admin, f"{prefix}x{i}")
    r = admin.get("/users", params={"name_filter": prefix, "limit": 2}, headers=PAGED)
    body = r.json()
    assert body["_pagination"]["total"] == 4
    assert body["_pagination"]["next"]["offset"] == 2
    assert body["_pagination"]["next"]["url"].endswith("limit=2&offset=2")
    assert [u["name"] for u in body["items"]] == [f"{prefix}x0", f"{prefix}x1"]
    last = admin.get(body["_pagination"]["next"]["url"], headers=PAGED).json()
    assert last["_pagination"]["next"] is None and len(last["items"]) == 2
    bare = admin.get("/users", params={"name_filter": prefix}).json()
    assert isinstance(bare, list) and len(bare) == 4


def test_sort_and_state(admin):
    prefix = unique("st")
    for i in (2, 1, 3):
        make_user(admin, f"{prefix}n{i}")
    names = [
        u["name"]
        for u in admin.get("/users", params={"name_filter": prefix, "sort": "-name"}).json()
    ]
    assert names == [f"{prefix}n3", f"{prefix}n2", f"{prefix}n1"]
    inactive = admin.get("/users", params={"name_filter": prefix, "state": "inactive"}).json()
    assert len(inactive) == 3
    assert admin.get("/users", params={"name_filter": prefix, "state": "ready"}).json() == []
    assert admin.get("/users", params={"state": "bogus"}).status_code == 400
    assert admin.get("/users", params={"sort": "bogus"}).status_code == 400


def test_patch_rename_and_admin(admin):
    name = make_user(admin)
    new = unique("renamed")
    r = admin.patch(f"/users/{name}", json={"name": new, "admin": True})
    assert r.status_code == 200 and r.json()["name"] == new and r.json()["admin"] is True
    assert admin.get(f"/users/{name}").status_code == 404
    other = make_user(admin)
    assert admin.patch(f"/users/{other}", json={"name": new}).status_code == 400
    assert admin.delete(f"/users/{new}").status_code == 204
    assert admin.delete(f"/users/{new}").status_code == 404


def test_cannot_delete_yourself(hub, admin):
    r = admin.delete(f"/users/{hub.admin_name}")
    assert r.status_code == 400 and r.json()["message"] == "Cannot delete yourself!"


def test_tokens_lifecycle(hub, admin):
    name = make_user(admin)
    r = admin.post(
        f"/users/{name}/tokens",
        json={
            "note": "probe",
            "expires_in": 3600,
            "scopes": ["read:users!user", "read:servers!user"],
        },
    )
    assert r.status_code == 201, r.text
    tok = r.json()
    assert set(tok["scopes"]) >= {
        f"read:servers!user={name}",
        f"read:users!user={name}",
        f"read:users:name!user={name}",
    }
    assert tok["expires_at"] and tok["note"].startswith("probe")
    with client(hub, tok["token"]) as c:
        me = c.get("/user").json()
        assert me["name"] == name and me["token_id"] == tok["id"]
        r = c.get("/users")
        assert r.status_code == 403 and "list:users" in r.json()["message"]
        assert c.get(f"/users/{hub.admin_name}").status_code == 404
    listed = admin.get(f"/users/{name}/tokens").json()["api_tokens"]
    assert tok["id"] in [t["id"] for t in listed]
    assert admin.get(f"/users/{name}/tokens/{tok['id']}").status_code == 200
    assert admin.delete(f"/users/{name}/tokens/{tok['id']}").status_code == 204
    with client(hub, tok["token"]) as c:
        assert c.get("/user").status_code == 403
    assert admin.get(f"/users/{name}/tokens/{tok['id']}").status_code == 404
    assert admin.get(f"/users/{name}/tokens/xyz").status_code == 404


def test_token_cannot_exceed_owner(hub, admin):
    name = make_user(admin)
    with client(hub, token_for(admin, name)) as c:
        r = c.post(f"/users/{name}/tokens", json={"scopes": ["admin:users"]})
        assert r.status_code == 400 and "not held" in r.json()["message"]
        r = c.post(f"/users/{name}/tokens", json={"scopes": ["read:users"]})
        assert r.status_code == 400
        assert c.post(f"/users/{name}/tokens", json={"roles": ["token"]}).status_code == 201
        r = c.post(f"/users/{name}/tokens", json={"roles": ["nope"]})
        assert r.status_code == 400


def test_password_bootstrap_token(hub):
    name = unique("pw")
    r = httpx.post(
        f"{hub.api_url}/users/{name}/tokens",
        json={"auth": {"username": name, "password": "anything"}},
    )
    assert r.status_code in (201, 403)  # dummy authenticator: user must exist in the hub
    r = httpx.post(f"{hub.api_url}/users/{name}/tokens", json={})
    assert r.status_code == 403


def test_groups(admin):
    a, b = make_user(admin), make_user(admin)
    g = unique("grp")
    r = admin.post("/groups", json={"groups": [g], "users": [a]})
    assert r.status_code == 201 and r.json()[0]["users"] == [a]
    assert admin.post(f"/groups/{g}").status_code == 409
    r = admin.post(f"/groups/{g}/users", json={"users": [b]})
    assert r.status_code == 200 and sorted(r.json()["users"]) == sorted([a, b])
    r = admin.request("DELETE", f"/groups/{g}/users", json={"users": [a]})
    assert r.json()["users"] == [b]
    r = admin.put(f"/groups/{g}/properties", json={"course": "x"})
    assert r.json()["properties"] == {"course": "x"}
    assert admin.get(f"/users/{b}").json()["groups"] == [g]
    assert admin.post(f"/groups/{g}/users", json={"users": ["nobody-here"]}).status_code == 400
    assert admin.delete(f"/groups/{g}").status_code == 204
    assert admin.get(f"/groups/{g}").status_code == 404


def test_server_records(admin):
    name = make_user(admin)
    r = admin.put(
        f"/users/{name}/servers/gpu",
        json={"display_name": "My GPU box", "user_options": {"image": "x"}},
    )
    assert r.status_code == 201 and r.json()["stopped"] is True
    assert r.json()["display_name"] == "My GPU box"
    assert admin.put(f"/users/{name}/servers/gpu", json={}).status_code == 409
    assert admin.put(f"/users/{name}/servers/Bad_Name", json={}).status_code == 400
    r = admin.patch(f"/users/{name}/servers/gpu", json={"name": "gpu2"})
    assert r.status_code == 200 and r.json()["name"] == "gpu2"
    assert admin.get(f"/users/{name}/servers/gpu2").json()["user_options"] == {"image": "x"}
    assert admin.get(f"/users/{name}/servers/gpu").status_code == 404
    assert (
        admin.request("DELETE", f"/users/{name}/servers/gpu2", json={"remove": True}).status_code
        == 204
    )
    users = admin.get(f"/users/{name}", params={"include_stopped_servers": "1"}).json()
    assert set(users["servers"]) == {""}


def test_share_codes_and_shares(admin):
    owner, bob = make_user(admin), make_user(admin)
    r = admin.post(f"/share-codes/{owner}/", json={"expires_in": 3600})
    assert r.status_code == 200
    code = r.json()
    assert code["accept_url"].endswith(code["code"]) and code["id"].startswith("sc_")
    listed = admin.get(f"/share-codes/{owner}").json()
    assert listed["_pagination"]["total"] == 1 and "code" not in listed["items"][0]
    assert admin.post(f"/share-codes/{owner}/", json={"expires_in": 5}).status_code == 400
    r = admin.post(f"/shares/{owner}/", json={"user": bob})
    assert r.status_code == 200 and r.json()["scopes"] == [f"access:servers!server={owner}/"]
    shared = admin.get(f"/users/{bob}/shared").json()
    assert [s["server"]["user"]["name"] for s in shared["items"]] == [owner]
    r = admin.patch(f"/shares/{owner}/", json={"user": bob})
    assert r.status_code == 200 and r.json() == {}
    assert admin.get(f"/users/{bob}/shared").json()["items"] == []
    assert (
        admin.request("DELETE", f"/share-codes/{owner}/", params={"id": code["id"]}).status_code
        == 204
    )
    assert admin.post(f"/shares/{owner}").status_code == 405


def test_proxy(admin):
    routes = admin.get("/proxy").json()
    assert "/" in routes and routes["/"]["data"]["hub"] is True
    assert admin.post("/proxy").status_code == 200
    paged = admin.get("/proxy", headers=PAGED).json()
    assert isinstance(paged["items"], dict)


def test_services_empty(admin):
    assert admin.get("/services").json() == {}
    assert admin.get("/services/nope").status_code == 404


def test_deprecated_authorizations(hub, admin):
    name = make_user(admin)
    token = token_for(admin, name)
    r = admin.get(f"/authorizations/token/{token}")
    assert r.status_code == 200 and r.json()["name"] == name
    assert admin.get("/authorizations/token/nonexistent-token-xx").status_code == 404
    assert admin.post("/authorizations/token").status_code == 404
    assert admin.get("/authorizations/cookie/x/y").status_code == 404
    assert httpx.get(f"{hub.api_url}/authorizations/token/{token}").status_code == 403
