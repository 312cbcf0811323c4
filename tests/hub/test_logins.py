"""hub/logins.py on a real (SQLite) database: group sync that spares admin-made groups,
encrypted auth_state, key rotation of stored secrets."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from amalthea.auth.base import AuthResult
from amalthea.auth.dummy import DummyAuthenticator
from amalthea.auth.state_crypto import AuthStateCrypto, generate_key, parse_keys
from amalthea.hub.logins import Logins, rotate_stored_secrets
from amalthea.hub.store import queries
from amalthea.hub.store.db import Database
from amalthea.hub.store.migrate import prepare
from amalthea.hub.store.models import Group, User


@pytest.fixture
async def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    await asyncio.to_thread(prepare, url, False)
    database = Database(url)
    yield database
    await database.dispose()


async def groups_of(db: Database, name: str) -> list[str]:
    async with db.session() as s:
        user = await queries.user_by_name(s, name)
        return sorted(g.name for g in user.groups)


async def test_group_sync_spares_admin_groups(db):
    async with db.session() as s:
        user = await queries.create_user(s, "alice")
        teachers = Group(name="teachers", managed_by_auth=False)
        s.add_all([teachers, Group(name="physics", managed_by_auth=False)])
        await s.refresh(user, attribute_names=["groups"])
        user.groups.append(teachers)
        await s.commit()
    logins = Logins(db, DummyAuthenticator(manage_groups=True), None)
    await logins.apply(AuthResult(name="alice", groups=["physics", "lab-a", "lab-b"]))
    # physics is admin-made: not joined; lab-a/lab-b created as managed
    assert await groups_of(db, "alice") == ["lab-a", "lab-b", "teachers"]
    await logins.apply(AuthResult(name="alice", groups=["lab-b"]))
    assert await groups_of(db, "alice") == ["lab-b", "teachers"]  # left lab-a, kept teachers
    await logins.apply(AuthResult(name="alice", groups=None))  # None: not managed this time
    assert await groups_of(db, "alice") == ["lab-b", "teachers"]
    async with db.session() as s:
        managed = {g.name: g.managed_by_auth for g in (await s.execute(select(Group))).scalars()}
    assert managed == {"teachers": False, "physics": False, "lab-a": True, "lab-b": True}


async def test_auth_state_encrypted_and_rotated(db):
    old, new = generate_key(), generate_key()
    logins = Logins(db, DummyAuthenticator(enable_auth_state=True),
                    AuthStateCrypto(parse_keys(old)))  # fmt: skip
    await logins.apply(AuthResult(name="bob", auth_state={"access_token": "t0ken"}))
    async with db.session() as s:
        blob = (await s.execute(select(User.encrypted_auth_state))).scalar()
    assert b"t0ken" not in blob
    both = AuthStateCrypto(parse_keys(f"{new};{old}"))
    assert await rotate_stored_secrets(db, both) == 1
    assert await rotate_stored_secrets(db, both) == 0  # already on the newest key
    only_new = Logins(db, logins.auth, AuthStateCrypto(parse_keys(new)))
    stored = await only_new.stored_result("bob")
    assert stored is not None and stored.auth_state == {"access_token": "t0ken"}
