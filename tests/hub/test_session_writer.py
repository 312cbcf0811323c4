"""store/session_writer.py on a real SQLite database: a session id is returned only once its row
is committed, concurrent logins share commits, one bad row fails alone, and a held write lock
makes logins wait without stopping the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

import pytest

from amalthea.hub.store import queries
from amalthea.hub.store.db import Database
from amalthea.hub.store.migrate import prepare
from amalthea.hub.store.session_writer import SessionWriter


@pytest.fixture
async def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    await asyncio.to_thread(prepare, url, False)
    database = Database(url)
    async with database.session() as s:
        await queries.create_user(s, "alice")
        await s.commit()
    yield database
    await database.dispose()


@pytest.fixture
async def writer(db):
    w = SessionWriter(db)
    yield w
    await w.close()


def session_rows(db: Database) -> dict[str, int]:
    path = db.url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT id, user_id FROM sessions").fetchall())


async def alice_id(db: Database) -> int:
    async with db.session() as s:
        user = await queries.user_by_name(s, "alice")
        assert user is not None
        return user.id


async def test_the_row_is_committed_when_create_returns(db, writer):
    uid = await alice_id(db)
    sid = await writer.create(uid, 14, "a browser")
    assert session_rows(db) == {sid: uid}  # another connection sees it: committed


async def test_concurrent_logins_share_commits(db, writer):
    uid = await alice_id(db)
    commits = 0
    write = writer._write

    def counting(conn, batch):
        nonlocal commits
        commits += 1
        return write(conn, batch)

    writer._write = counting
    ids = await asyncio.gather(*(writer.create(uid, 14) for _ in range(200)))
    assert set(session_rows(db)) == set(ids) and len(set(ids)) == 200
    assert commits < 200  # the ones queued while a commit ran went into the next one together


async def test_a_bad_row_fails_alone(db, writer):
    uid = await alice_id(db)
    results = await asyncio.gather(
        writer.create(uid, 14), writer.create(999_999, 14), writer.create(uid, 14),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[1], sqlite3.IntegrityError)  # no such user (foreign key)
    assert set(session_rows(db)) == {results[0], results[2]}


async def test_a_held_write_lock_delays_logins_not_the_event_loop(db, writer):
    uid = await alice_id(db)
    path = db.url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's write lock
        login = asyncio.ensure_future(writer.create(uid, 14))
        t0 = time.monotonic()
        for _ in range(10):  # the loop keeps turning while the login waits for the lock
            await asyncio.sleep(0.02)
        assert time.monotonic() - t0 < 1.0
        assert not login.done()
        blocker.execute("COMMIT")
        sid = await asyncio.wait_for(login, 10)
        assert sid in session_rows(db)
    finally:
        blocker.close()


async def test_close_writes_what_is_queued(db):
    uid = await alice_id(db)
    w = SessionWriter(db)
    logins = [asyncio.ensure_future(w.create(uid, 14)) for _ in range(20)]
    await asyncio.sleep(0)  # all queued
    await w.close()
    ids = await asyncio.gather(*logins)
    assert set(session_rows(db)) == set(ids)
