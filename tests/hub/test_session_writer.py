"""store/session_writer.py on a real SQLite database: a session id is returned only once its row
is committed (inline when the write lock is free); while another connection holds the lock,
logins wait in the writer thread without stopping the event loop and then share commits; one bad
row fails alone."""

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


@contextlib.contextmanager
def write_lock_held(db: Database):
    """Another connection holds SQLite's write lock until the block ends."""
    path = db.url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("COMMIT")
        blocker.close()


async def test_the_row_is_committed_when_create_returns(db, writer):
    uid = await alice_id(db)
    sid = await writer.create(uid, 14, "a browser")
    assert session_rows(db) == {sid: uid}  # another connection sees it: committed
    assert writer._thread is None  # the lock was free: written inline, no hand-off


async def test_a_held_write_lock_delays_logins_not_the_event_loop(db, writer):
    uid = await alice_id(db)
    commits = 0
    write = writer._write

    def counting(conn, batch):
        nonlocal commits
        commits += 1
        return write(conn, batch)

    writer._write = counting
    with write_lock_held(db):
        logins = [asyncio.ensure_future(writer.create(uid, 14)) for _ in range(200)]
        t0 = time.monotonic()
        for _ in range(10):  # the loop keeps turning while the logins wait for the lock
            await asyncio.sleep(0.02)
        assert time.monotonic() - t0 < 1.0
        assert not any(login.done() for login in logins)
    ids = await asyncio.wait_for(asyncio.gather(*logins), 10)
    assert set(session_rows(db)) == set(ids) and len(set(ids)) == 200
    assert commits < 20  # the logins that waited together were committed together


@pytest.mark.parametrize("contended", [False, True])
async def test_a_bad_row_fails_alone(db, writer, contended):
    uid = await alice_id(db)
    with write_lock_held(db) if contended else contextlib.nullcontext():
        logins = [asyncio.ensure_future(writer.create(u, 14)) for u in (uid, 999_999, uid)]
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*logins, return_exceptions=True)
    assert isinstance(results[1], sqlite3.IntegrityError)  # no such user (foreign key)
    assert set(session_rows(db)) == {results[0], results[2]}


async def test_close_writes_what_is_queued(db):
    uid = await alice_id(db)
    w = SessionWriter(db)
    with write_lock_held(db):
        logins = [asyncio.ensure_future(w.create(uid, 14)) for _ in range(20)]
        await asyncio.sleep(0.05)  # all queued for the thread
        closing = asyncio.ensure_future(w.close())
        await asyncio.sleep(0.05)
    await closing
    ids = await asyncio.gather(*logins)
    assert set(session_rows(db)) == set(ids)
