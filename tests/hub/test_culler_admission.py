"""Built-in idle culler (per-group timeouts, warning) and the fair spawn queue, in process."""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from amalthea.hub.clock import utcnow
from amalthea.hub.culler import Culler
from amalthea.hub.lifecycle.admission import NO_WAIT, Admission, SpawnLimits
from amalthea.hub.lifecycle.manager import ServerRuntime, SpawnRefused
from amalthea.hub.lifecycle.states import ServerState
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import Base, Group, Server, User
from amalthea.testing.session import HubSession


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


CULL_FAST = f"""
c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]
c.Culler.enabled = True
c.Culler.every = 0.5
c.Culler.timeout = 240
c.Culler.warn_before = 238
"""


def test_home_page_shows_cull_warning_and_keep_running_resets_it(amalthea_hub_factory):
    """A real hub with a short culler timeout: after ~2 s idle the warning banner appears on
    /hub/home; its Keep running button records activity and takes the banner away."""
    hub = amalthea_hub_factory(config=CULL_FAST)
    with HubSession(hub.url) as alice:
        alice.login("alice")
        assert alice.start_server()[-1]["ready"]
        deadline = time.monotonic() + 30
        while "Keep running" not in (page := alice.client.get("/hub/home")).text:
            assert time.monotonic() < deadline, "no cull warning on the home page"
            time.sleep(0.3)
        assert "will be stopped in 4 minutes for inactivity" in page.text
        before = httpx.get(f"{hub.api_url}/users/alice", headers=hub.admin_headers).json()
        # the form needs its _xsrf: without it the hub refuses
        r = alice.client.post("/hub/home/keep-running", data={"server_name": ""})
        assert r.status_code == 403
        xsrf = re.search(r'name="_xsrf" value="([^"]*)"', page.text).group(1)
        r = alice.client.post("/hub/home/keep-running", data={"server_name": "", "_xsrf": xsrf})
        assert r.status_code == 302 and r.headers["location"].endswith("/hub/home")
        after = httpx.get(f"{hub.api_url}/users/alice", headers=hub.admin_headers).json()
        assert (after["servers"][""]["last_activity"] or "") > (
            before["servers"][""]["last_activity"] or ""
        )
        notices = httpx.get(f"{hub.api_url}/users/alice/notices", headers=hub.admin_headers)
        assert notices.json() == {"notices": []}
        assert "Keep running" not in alice.client.get("/hub/home").text
        r = alice.client.post("/hub/home/keep-running", data={"server_name": "nope", "_xsrf": xsrf})
        assert r.status_code == 404
