"""Periodic checks that keep the proxy and the activity record honest.

- every ``proxy_check_interval`` (10 s): is the proxy API answering? If not and the hub starts
  its own proxy, start it again and replay every route (users reconnect; their servers never
  stopped).
- every ``activity_interval`` (300 s): read each route's ``last_activity`` from the proxy and
  move users' and servers' ``last_activity`` forward (what the idle culler reads), then run the
  route check (re-add missing routes, drop stale ones).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from amalthea.hub.store import queries
from amalthea.hub.store.models import Server, User

__all__ = ["Housekeeper"]

log = logging.getLogger("amalthea.housekeeping")


def _naive_utc(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    from dateutil.parser import isoparse  # here, not at the top: keeps it off the hub's start

    try:
        ts = isoparse(value)
    except ValueError:
        return None
    out: datetime = ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
    return out


class Housekeeper:
    def __init__(
        self, manager: Any, proxy_check_interval: float = 10.0, activity_interval: float = 300.0
    ) -> None:
        self.manager = manager
        self.proxy_check_interval = proxy_check_interval
        self.activity_interval = activity_interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_activity = loop.time() + self.activity_interval
        while True:
            await asyncio.sleep(self.proxy_check_interval)
            try:
                await self.check_proxy()
                if loop.time() >= next_activity:
                    next_activity = loop.time() + self.activity_interval
                    await self.harvest_activity()
                    await self.manager.sync_routes()
            except Exception:  # keep checking; one bad round must not end housekeeping
                log.exception("housekeeping round failed")

    async def check_proxy(self) -> None:
        proxy = self.manager.proxy
        if await proxy._api_ok():
            return
        if not getattr(proxy, "should_start", False):
            log.warning("The proxy API at %s is not answering.", proxy.api_url)
            return
        log.warning("The proxy is gone; starting it again and restoring its routes.")
        proxy.process = None
        await proxy.start()
        await self.manager.sync_routes()

    async def harvest_activity(self) -> None:
        routes = await self.manager.proxy.get_all_routes()
        seen: dict[tuple[str, str], datetime] = {}
        for route in routes.values():
            data = route.get("data", {})
            ts = _naive_utc(data.get("last_activity"))
            if ts is not None and "user" in data:
                seen[(data["user"], data.get("server_name", ""))] = ts
        if not seen:
            return
        async with self.manager.db.session() as s:
            rows = await s.execute(
                select(Server, User)
                .join(User, Server.user_id == User.id)
                .where(User.name.in_({u for u, _ in seen}))
            )
            for srv, user in rows.all():
                ts = seen.get((user.name, srv.name))
                if ts is not None:
                    srv.last_activity = queries.bump(srv.last_activity, ts)
                    user.last_activity = queries.bump(user.last_activity, ts)
            await s.commit()
