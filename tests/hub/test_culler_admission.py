"""Built-in idle culler (per-group timeouts, warning) and the fair spawn queue, in process."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from amalthea.hub.clock import utcnow
from amalthea.hub.culler import Culler
from amalthea.hub.lifecycle.admission import NO_WAIT, Admission, SpawnLimits
from amalthea.hub.lifecycle.manager import ServerRuntime, SpawnRefused
from amalthea.hub.lifecycle.states import ServerState
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import Base, Group, Server, User


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/c.sqlite")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()


class FakeManager:
    def __init__(self, db=None):
        self.db = db
        self.runtimes = {}
        self.stopped = []
        self.before_spawn, self.before_start, self.after_stop = [], [], []

    def get(self, user, name=""):
        return self.runtimes.get((user, name))

    async def stop(self, user, name=""):
        self.stopped.append((user, name))


async def _user(s, name, idle_minutes, groups=()):
    u = User(name=name, cookie_id=uuid.uuid4().hex)
    u.groups = list(groups)
    s.add(u)
    await s.flush()
    now = utcnow()
    s.add(
        Server(
            user_id=u.id,
            name="",
            state="running",
            started=now - timedelta(hours=5),
            last_activity=now - timedelta(minutes=idle_minutes),
        )
    )


async def test_culler_timeouts_groups_and_warning(db):
    async with db.session() as s:
        long_jobs = Group(name="long-jobs")
        s.add(long_jobs)
        await _user(s, "idle", 70)
        await _user(s, "recent", 5)
        await _user(s, "almost", 57)
        await _user(s, "grouped", 70, [long_jobs])
        await s.commit()
    manager = FakeManager()
    culler = Culler(timeout=3600, warn_before=300, group_timeouts={"long-jobs": 86400})
    culler.db, culler.manager = db, manager
    culled = await culler.cull_once()
    assert culled == [("idle", "")]
    assert manager.stopped == [("idle", "")]
    assert set(culler.notices) == {("almost", "")}
    assert "will be stopped" in culler.notices[("almost", "")].message


async def test_culler_is_off_by_default(db):
    culler = Culler()
    culler.start(db, FakeManager())
    assert culler._task is None


def _rt(user, name="", state=ServerState.PENDING):
    rt = ServerRuntime(user, name, 1, 1, f"/user/{user}/")
    rt.state = state
    return rt


async def test_fair_queue_positions_and_release():
    manager = FakeManager()
    adm = Admission(manager, SpawnLimits(concurrent_spawn_limit=1))
    first, second, third = _rt("a"), _rt("b"), _rt("c")
    for rt in (first, second, third):
        manager.runtimes[rt.key] = rt
    await adm.enter(first)  # admitted at once
    t2 = asyncio.create_task(adm.enter(second))
    await asyncio.sleep(0.05)
    t3 = asyncio.create_task(adm.enter(third))
    await asyncio.sleep(0.05)
    assert adm.position(second) == 1 and adm.position(third) == 2
    assert any(e.get("queue_position") == 2 for e in third.events)
    # a caller that does not want to wait gets 429 with Retry-After
    token = NO_WAIT.set(True)
    try:
        with pytest.raises(SpawnRefused) as err:
            await adm.check(_rt("d", state=ServerState.STOPPED))
        assert err.value.status == 429 and 30 <= err.value.retry_after <= 60
    finally:
        NO_WAIT.reset(token)
    first.state = ServerState.RUNNING  # first spawn finished: the next in line goes
    first.notify()
    await asyncio.wait_for(t2, 5)
    assert not t3.done() and adm.position(third) == 1
    second.state = ServerState.FAILED
    second.notify()
    await asyncio.wait_for(t3, 5)


async def test_active_server_limit_queues():
    manager = FakeManager()
    adm = Admission(manager, SpawnLimits(active_server_limit=1, concurrent_spawn_limit=0))
    running, waiting = _rt("a", state=ServerState.RUNNING), _rt("b")
    manager.runtimes = {running.key: running, waiting.key: waiting}
    task = asyncio.create_task(adm.enter(waiting))
    await asyncio.sleep(0.1)
    assert adm.position(waiting) == 1
    running.state = ServerState.STOPPED
    adm.released()
    await asyncio.wait_for(task, 5)
