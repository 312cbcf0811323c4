"""DB-backed resolution: roles, group roles, shares, tokens ∩ owner, config roles."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from amalthea.hub.rbac import resolve, roles
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import (
    APIToken,
    Base,
    Group,
    OAuthClient,
    Server,
    Service,
    Share,
    User,
)


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/rbac.sqlite")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with database.session() as s:
        s.add(OAuthClient(identifier="jupyterhub", description="JupyterHub"))
        for name in ("alice", "bob", "carol"):
            s.add(User(name=name, cookie_id=uuid.uuid4().hex))
        s.add(Group(name="g1"))
        s.add(Service(name="svc"))
        await s.commit()
        await roles.apply_roles(
            s,
            load_roles=[
                {"name": "readers", "scopes": ["read:users"], "groups": ["g1"]},
                {
                    "name": "svc-role",
                    "scopes": ["list:users", "read:users:activity"],
                    "services": ["svc"],
                },
                {"name": "admin", "users": ["carol"]},
            ],
            extra_user_scopes=["shares!user"],
        )
        await s.commit()
    resolve.forget_roles()
    yield database
    await database.dispose()


async def _user(s, name):
    return (await s.execute(select(User).where(User.name == name))).scalar_one()


async def test_default_user_scopes(db):
    async with db.session() as s:
        got = await resolve.user_scopes(s, await _user(s, "alice"))
    assert "servers!user=alice" in got and "read:users!user=alice" in got
    assert "shares!user=alice" in got  # extra_user_scopes
    assert "read:users" not in got


async def test_group_role_and_admin_from_config(db):
    async with db.session() as s:
        g1 = (await s.execute(select(Group).where(Group.name == "g1"))).scalar_one()
        bob = await _user(s, "bob")
        bob.groups.append(g1)
        await s.commit()
    async with db.session() as s:
        bob = await _user(s, "bob")
        assert "read:users" in await resolve.user_scopes(s, bob)
        carol = await _user(s, "carol")
        assert carol.admin
        assert "admin:users" in await resolve.user_scopes(s, carol)


async def test_shares_add_scopes(db):
    async with db.session() as s:
        alice, bob = await _user(s, "alice"), await _user(s, "bob")
        srv = Server(user_id=alice.id, name="")
        s.add(srv)
        await s.flush()
        s.add(
            Share(
                owner_id=alice.id,
                server_id=srv.id,
                user_id=bob.id,
                scopes=["access:servers!server=alice/"],
            )
        )
        await s.commit()
    async with db.session() as s:
        got = await resolve.user_scopes(s, await _user(s, "bob"))
    assert "access:servers!server=alice/" in got


@pytest.mark.parametrize(
    ("token_scopes", "expected_in", "expected_out"),
    [
        (["inherit"], {"servers!user=alice"}, set()),
        (
            ["read:users!user"],
            {"read:users!user=alice", "read:users:name!user=alice"},
            {"servers!user=alice"},
        ),
        (["admin:users"], {"read:users:name!user=alice"}, {"admin:users", "read:users"}),
        (["read:users"], {"read:users!user=alice"}, {"read:users"}),
        (
            [],
            {"read:users:name!user=alice", "read:users:groups!user=alice"},
            {"servers!user=alice"},
        ),
    ],
)
async def test_token_scopes_never_exceed_owner(db, token_scopes, expected_in, expected_out):
    async with db.session() as s:
        alice = await _user(s, "alice")
        tok = APIToken(
            user_id=alice.id, hashed=uuid.uuid4().hex, prefix="abcd", scopes=token_scopes
        )
        s.add(tok)
        await s.commit()
        tok = (await s.execute(select(APIToken).where(APIToken.id == tok.id))).scalar_one()
        got = await resolve.token_scopes(s, tok)
    assert expected_in <= got, expected_in - got
    assert not (expected_out & got)


async def test_server_token_bare_server_filter(db):
    async with db.session() as s:
        alice = await _user(s, "alice")
        tok = APIToken(
            user_id=alice.id,
            hashed=uuid.uuid4().hex,
            prefix="abcd",
            note="Server at /user/alice/gpu/",
            scopes=roles.DEFAULT_ROLES["server"]["scopes"],
        )
        s.add(tok)
        await s.commit()
        tok = (await s.execute(select(APIToken).where(APIToken.id == tok.id))).scalar_one()
        got = await resolve.token_scopes(s, tok)
    assert got == {
        "access:servers!server=alice/gpu",
        "users:activity!user=alice",
        "read:users:activity!user=alice",
        "read:users:name!user=alice",
        "read:users:groups!user=alice",
    }


async def test_service_token(db):
    async with db.session() as s:
        svc = (await s.execute(select(Service).where(Service.name == "svc"))).scalar_one()
        tok = APIToken(
            service_id=svc.id, hashed=uuid.uuid4().hex, prefix="abcd", scopes=["inherit"]
        )
        s.add(tok)
        await s.commit()
        tok = (await s.execute(select(APIToken).where(APIToken.id == tok.id))).scalar_one()
        got = await resolve.token_scopes(s, tok)
    assert "list:users" in got and "read:users:activity" in got and "read:users" not in got


async def test_revoking_role_shrinks_token(db):
    async with db.session() as s:
        await roles.apply_roles(s, load_roles=[{"name": "readers", "scopes": ["read:users"]}])
        await s.commit()
        g1 = (await s.execute(select(Group).where(Group.name == "g1"))).scalar_one()
        assert g1.roles == []


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "A"},
        {"name": "ok-role", "scopes": ["nope"]},
        {"name": "ok-role", "scopes": "read:users"},
        {"name": "ok-role", "extra": 1},
        {"name": "admin", "scopes": ["read:users"]},
        {"name": "ok-role", "services": ["missing"]},
    ],
)
async def test_bad_roles_rejected(db, bad):
    async with db.session() as s:
        with pytest.raises((roles.RoleError, ValueError)):
            await roles.apply_roles(s, load_roles=[bad])
