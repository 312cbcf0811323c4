"""Built-in idle culler: stop servers nobody has used for a while (off by default).

"Used" is the server's ``last_activity``: the single-user extension reports activity while a
kernel is busy or a terminal is attached (``amalthea/singleuser/activity.py``), and the proxy's
route activity is harvested too, so a six-hour computation is not idle. The classic external
``jupyterhub-idle-culler`` works as well (as a hub-managed service); this one saves the extra
process and adds per-group timeouts and a warning before culling.

The warning is a *notice* the hub keeps per server (``notices``); pages and the API show it,
and it is cleared as soon as new activity arrives. Nothing here touches HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from traitlets import Bool, Dict, Float, Integer
from traitlets.config import Configurable

from amalthea.hub.clock import isoformat, utcnow
from amalthea.hub.store.models import Group, Server, User, user_group_map

__all__ = ["Culler", "Notice"]

log = logging.getLogger("amalthea.culler")


@dataclass
class Notice:
    username: str
    server_name: str
    message: str
    cull_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.username, "server_name": self.server_name,
                "message": self.message, "cull_at": isoformat(self.cull_at)}  # fmt: skip


class Culler(Configurable):
    """Stops idle servers. ``c.Culler.enabled = True`` to turn it on."""

    enabled = Bool(False, help="Cull idle servers.").tag(config=True)
    timeout = Integer(3600, help="Seconds without activity after which a server is stopped.").tag(
        config=True
    )
    every = Float(60.0, help="Seconds between culling passes.").tag(config=True)
    warn_before = Integer(
        300,
        help="Seconds before culling at which the user gets a warning notice (0 = no warning).",
    ).tag(config=True)
    group_timeouts = Dict(
        value_trait=Integer(),
        help="""Per-group idle timeouts in seconds, e.g. ``{"long-jobs": 86400}``. A user in
        several listed groups gets the longest of them; users in none get ``timeout``.""",
    ).tag(config=True)
    max_age = Integer(
        0, help="Stop servers older than this many seconds even if active (0 = never)."
    ).tag(config=True)
    cull_admin_users = Bool(True, help="Also cull admins' servers.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.notices: dict[tuple[str, str], Notice] = {}
        self._task: asyncio.Task[None] | None = None
        self.db: Any = None
        self.manager: Any = None

    def start(self, db: Any, manager: Any) -> None:
        """Begin culling in the background if enabled (the culler owns its task)."""
        self.db, self.manager = db, manager
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._loop())
            log.info("idle culler on: timeout %ss, every %ss", self.timeout, self.every)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.cull_once()
            except Exception:  # one bad pass must not end culling for good
                log.exception("culling pass failed")

    def timeout_for(self, groups: list[str]) -> int:
        found = [self.group_timeouts[g] for g in groups if g in self.group_timeouts]
        return max(found) if found else self.timeout

    async def cull_once(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """One pass; returns the (user, server) pairs it asked to stop."""
        now = now or utcnow()
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(
                        User.name,
                        User.admin,
                        Server.name,
                        Server.last_activity,
                        Server.started,
                        User.id,
                    )
                    .join(User, Server.user_id == User.id)
                    .where(Server.state == "running")
                )
            ).all()
            ids = list({r[5] for r in rows})
            groups: dict[int, list[str]] = {}
            if ids and self.group_timeouts:
                grows = await s.execute(
                    select(user_group_map.c.user_id, Group.name)
                    .join(Group, Group.id == user_group_map.c.group_id)
                    .where(user_group_map.c.user_id.in_(ids))
                )
                for uid, gname in grows:
                    groups.setdefault(uid, []).append(gname)
        culled: list[tuple[str, str]] = []
        live: set[tuple[str, str]] = set()
        for uname, admin, sname, last, started, uid in rows:
            if admin and not self.cull_admin_users:
                continue
            key = (uname, sname)
            live.add(key)
            timeout = self.timeout_for(groups.get(uid, []))
            idle_since = last or started or now
            idle = (now - idle_since).total_seconds()
            too_old = bool(
                self.max_age and started and (now - started).total_seconds() > self.max_age
            )
            if idle >= timeout or too_old:
                why = "too old" if too_old else f"idle for {int(idle)} s"
                log.info("culling server %s/%s (%s)", uname, sname, why)
                self.notices.pop(key, None)
                await self.manager.stop(uname, sname)
                culled.append(key)
            elif self.warn_before and idle >= timeout - self.warn_before:
                cull_at = idle_since + timedelta(seconds=timeout)
                if key not in self.notices:
                    minutes = max(1, int((cull_at - now).total_seconds() // 60))
                    self.notices[key] = Notice(
                        uname, sname,
                        f"Your server has been idle and will be stopped in about {minutes} "
                        "minute(s) unless you use it.",
                        cull_at,
                    )  # fmt: skip
                    log.info("warned %s/%s: culling at %s", uname, sname, isoformat(cull_at))
            else:
                self.notices.pop(key, None)  # activity came back
        for key in list(self.notices):
            if key not in live:
                del self.notices[key]
        return culled
