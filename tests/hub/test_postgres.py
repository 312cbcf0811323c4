"""The hub on PostgreSQL by URL (``c.Amalthea.db_url = "postgresql://..."``), on a private
cluster started by :mod:`amalthea.testing.engines.postgres`.

What must hold: a plain ``postgresql://`` URL works (the hub picks asyncpg, Alembic psycopg),
``amalthea upgrade-db`` creates the schema, the REST API, login and spawn/stop behave as on
SQLite, and everything survives a hub restart because it lives in PostgreSQL, not in the data dir.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import select, text

from amalthea.hub.store.db import Database, async_url, sync_url
from amalthea.hub.store.migrate import HEAD, prepare
from amalthea.hub.store.models import User
from amalthea.hub.store.reads import Reader
from amalthea.testing.engines import postgres as pg_engine
from amalthea.testing.session import HubSession

psycopg = pytest.importorskip(
    "psycopg", reason="the postgres extra: pip install 'amalthea[postgres]'"
)
pytestmark = pytest.mark.engine("postgres")
# the engine's fixtures: one private cluster per session, a fresh database per test
postgres_cluster = pg_engine.postgres_cluster
postgres_url = pg_engine.postgres_url

FAKE = f'c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]\n'


def test_url_mapping_picks_async_and_sync_drivers():
    assert async_url("postgresql://u@h:5/db") == "postgresql+asyncpg://u@h:5/db"
    assert async_url("postgres://u@h:5/db") == "postgresql+asyncpg://u@h:5/db"
    assert sync_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert sync_url("postgres://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    # an explicit driver is the user's choice and is kept
    assert async_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_async_engine_and_reader_on_postgres(postgres_url, scheme):
    """Schema creation, async writes (asyncpg or psycopg async) and the sync Reader."""
    url = scheme + postgres_url.removeprefix("postgresql")
    prepare(url)
    prepare(url)  # second start: already at head, nothing to do

    async def write_and_read() -> list[str]:
        db = Database(url)
        try:
            async with db.session() as s, s.begin():
                s.add_all([User(name=n, cookie_id=f"c-{n}") for n in ("pg-alice", "pg-bob")])
            async with db.session() as s:
                rows = await s.execute(select(User.name).order_by(User.name))
                return list(rows.scalars())
        finally:
            await db.dispose()

    assert asyncio.run(write_and_read()) == ["pg-alice", "pg-bob"]
    reader = Reader(url)
    try:
        n = asyncio.run(reader.run(lambda conn: conn.execute(text("SELECT count(*) FROM users"))
                                   .scalar_one()))  # fmt: skip
        assert n == 2
    finally:
        reader.dispose()


def test_migration_scripts_replay_on_postgres(postgres_url):
    """The Alembic scripts themselves (not only create_all) build the models' schema."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from amalthea.hub.store.migrate import MIGRATIONS
    from amalthea.hub.store.models import Base

    engine = create_engine(sync_url(postgres_url))
    try:
        with engine.begin() as conn:
            cfg = _alembic_config(postgres_url, MIGRATIONS)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []  # tables, columns, types, indexes and constraints all match
    finally:
        engine.dispose()


def _alembic_config(url, migrations):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["url"] = url
    return cfg


@pytest.mark.slow
def test_upgrade_db_command_creates_schema(postgres_url, tmp_path):
    cmd = [sys.executable, "-m", "amalthea.cli", "upgrade-db", f"--db={postgres_url}"]
    for _ in range(2):  # the second run finds the schema current and changes nothing
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "is at the current schema" in done.stdout
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"users", "servers", "groups", "api_tokens", "oauth_clients", "sessions"} <= tables
    assert not list(tmp_path.glob("*.sqlite"))


@pytest.mark.slow
def test_hub_on_postgres_api_login_spawn_restart(postgres_url, amalthea_hub_factory):
    hub = amalthea_hub_factory(config=f"c.Amalthea.db_url = {postgres_url!r}\n" + FAKE)
    api = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=60)

    # users, groups, tokens: REST round trip
    r = api.post("/users", json={"usernames": ["pg-ann", "pg-ben"]})
    assert r.status_code == 201, r.text
    assert api.post("/users/pg-ann").status_code == 409
    r = api.post("/groups/pg-team", json={"users": ["pg-ann"]})
    assert r.status_code == 201, r.text
    assert api.post("/groups/pg-team/users", json={"users": ["pg-ben"]}).status_code == 200
    assert api.put("/groups/pg-team/properties", json={"course": "db"}).status_code == 200
    r = api.post("/users/pg-ann/tokens", json={"note": "pg", "expires_in": 3600})
    assert r.status_code == 201, r.text
    ann_token, token_id = r.json()["token"], r.json()["id"]
    ann = {"Authorization": f"token {ann_token}"}
    assert httpx.get(f"{hub.api_url}/user", headers=ann).json()["name"] == "pg-ann"
    r = api.get(
        "/users", params={"limit": 1}, headers={"Accept": "application/jupyterhub-pagination+json"}
    )
    assert r.status_code == 200 and r.json()["_pagination"]["total"] == 3  # admin + 2

    # the rows are in PostgreSQL, with the token hashed
    with psycopg.connect(postgres_url) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM users")}
        stored = [str(v) for row in conn.execute("SELECT * FROM api_tokens") for v in row]
    assert {"admin", "pg-ann", "pg-ben"} <= names
    assert ann_token not in stored
    assert not (hub.data_dir / "amalthea.sqlite").exists()

    # login, spawn, stop (fake single-user server through the proxy)
    with HubSession(hub.url) as s:
        assert s.login("pg-ann").status_code == 302
        events = s.start_server()
        assert events[-1]["ready"] is True, events
        r = httpx.get(f"{hub.url}/user/pg-ann/api/status", headers=ann)
        assert r.status_code == 200 and r.json()["user"] == "pg-ann"
        assert api.get("/users/pg-ann").json()["servers"][""]["ready"] is True
        assert s.stop_server().status_code in (202, 204)
        _wait_stopped(api, "pg-ann")
        cookies = dict(s.client.cookies)

    # restart: everything is still there, the token and the login cookie still work
    hub.restart()
    user = api.get("/users/pg-ann").json()
    assert user["groups"] == ["pg-team"] and user["servers"] == {}
    group = api.get("/groups/pg-team").json()
    assert sorted(group["users"]) == ["pg-ann", "pg-ben"] and group["properties"] == {
        "course": "db"
    }
    assert httpx.get(f"{hub.api_url}/user", headers=ann).json()["name"] == "pg-ann"
    assert api.get(f"/users/pg-ann/tokens/{token_id}").status_code == 200
    with httpx.Client(base_url=hub.url, cookies=cookies, timeout=60) as again:
        r = again.get("/hub/home")
        assert r.status_code == 200 and "pg-ann" in r.text

    # and a server started after the restart runs and stops again
    with HubSession(hub.url) as s:
        assert s.login("pg-ben").status_code == 302
        assert s.start_server()[-1]["ready"] is True
        assert s.stop_server().status_code in (202, 204)
        _wait_stopped(api, "pg-ben")
    api.close()


def _wait_stopped(api: httpx.Client, name: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(f"/users/{name}").json()["servers"] == {}:
            return
        time.sleep(0.1)
    raise AssertionError(
        f"{name}'s server still listed after stop: {api.get(f'/users/{name}').text}"
    )
