"""Spawn limits and the fair spawn queue.

Three limits (JupyterHub's names, protocol §5.4, §15):

- ``named_server_limit_per_user``: how many named servers a user may *have* (0 = no limit);
  creating one more is refused at once with 400 — waiting would not help.
- ``concurrent_spawn_limit``: how many spawns may be *in progress* at once (default 100).
- ``active_server_limit``: how many servers may be running or starting (0 = no limit).

When one of the last two is reached, JupyterHub answers 429 and the client retries blindly.
Here a spawn instead waits in one FIFO queue (first come, first served: no user can overtake
another by retrying) and its progress stream shows "position N in the queue". A caller that
prefers an immediate answer sends ``Prefer: wait=0`` (RFC 7240) and gets the classic 429 with
``Retry-After``; the web layer sets :data:`NO_WAIT` for that request.

Wiring: :meth:`Admission.install` appends :meth:`check` to ``ServerManager.before_spawn``
(refusals before the server turns pending) and :meth:`enter` to ``ServerManager.before_start``
(the queue wait, inside the spawn task, so a cancelled spawn leaves the queue).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections import deque
from typing import Any

from traitlets import Bool, Integer
from traitlets.config import Configurable

from amalthea.hub.lifecycle.manager import ServerRuntime, SpawnRefused
from amalthea.hub.lifecycle.states import ServerState

__all__ = ["NO_WAIT", "Admission", "SpawnLimits"]

#: Set to True by the web layer when the request carries ``Prefer: wait=0``.
NO_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar("amalthea_no_wait", default=False)


class SpawnLimits(Configurable):
    """Limits on servers and spawns (also ``c.Amalthea.<same name>``)."""

    named_server_limit_per_user = Integer(
        0, help="Maximum number of named servers per user (0 = unlimited)."
    ).tag(config=True)
    active_server_limit = Integer(
        0, help="Maximum number of running or starting servers hub-wide (0 = unlimited)."
    ).tag(config=True)
    concurrent_spawn_limit = Integer(
        100, help="Maximum number of spawns in progress at once (0 = unlimited)."
    ).tag(config=True)
    queue_spawns = Bool(
        True,
        help="""Spawns over a limit wait in a fair FIFO queue (position shown on the progress
        page) instead of failing with 429. Clients sending ``Prefer: wait=0`` still get 429.""",
    ).tag(config=True)


class Admission:
    """Decides when a spawn may start; owns the queue."""

    def __init__(self, manager: Any, limits: SpawnLimits) -> None:
        self.manager = manager
        self.limits = limits
        self._queue: deque[ServerRuntime] = deque()
        self._admitted: set[tuple[str, str]] = set()
        self._wakeup = asyncio.Event()

    def install(self) -> None:
        self.manager.before_spawn.append(self.check)
        hooks = getattr(self.manager, "before_start", None)
        if hooks is not None:
            hooks.append(self.enter)

    # ---- counting ------------------------------------------------------------------------
    def _spawning(self) -> int:
        """Admitted spawns still pending (queued ones don't count against the limits)."""
        for key in list(self._admitted):
            rt = self.manager.get(*key)
            if rt is None or rt.state is not ServerState.PENDING:
                self._admitted.discard(key)
        return len(self._admitted)

    def _active(self, exclude: ServerRuntime | None = None) -> int:
        """Running or admitted servers, not counting queued spawns nor ``exclude``."""
        queued = {rt.key for rt in self._queue}
        return sum(
            1
            for rt in self.manager.runtimes.values()
            if rt.state.active and rt.key not in queued and rt is not exclude
        )

    def _over(self, exclude: ServerRuntime | None = None) -> str | None:
        """Which limit a new spawn (``exclude``, if it already exists) would exceed, or None."""
        conc, active = self.limits.concurrent_spawn_limit, self.limits.active_server_limit
        if conc and self._spawning() >= conc:
            return f"Too many users trying to log in right now (concurrent_spawn_limit={conc})"
        if active and self._active(exclude) >= active:
            return f"Active user limit exceeded (active_server_limit={active})"
        return None

    def position(self, rt: ServerRuntime) -> int | None:
        """1-based queue position of a waiting spawn, None if not queued."""
        for i, queued in enumerate(self._queue):
            if queued is rt:
                return i + 1
        return None

    # ---- hooks ---------------------------------------------------------------------------
    async def check(self, rt: ServerRuntime) -> None:
        """before_spawn: refuse what waiting cannot fix, and 429 for callers that won't wait."""
        limit = self.limits.named_server_limit_per_user
        if limit and rt.name and not await self._within_named_limit(rt, limit):
            raise SpawnRefused(
                f"User {rt.username} already has the maximum of {limit} named servers. "
                "One must be deleted before a new server can be created",
                status=400,
            )
        if NO_WAIT.get() or not self.limits.queue_spawns:
            reason = "Spawns are queued (a limit is reached)" if self._queue else self._over(rt)
            if reason is not None:
                raise SpawnRefused(reason, status=429, retry_after=random.randint(30, 60))

    async def enter(self, rt: ServerRuntime) -> None:
        """before_start: wait for a free slot in FIFO order; emits queue positions."""
        if not self._queue and self._over(exclude=rt) is None:
            self._admitted.add(rt.key)
            return
        self._queue.append(rt)
        last = None
        try:
            while True:
                pos = self.position(rt)
                if pos == 1 and self._over(exclude=rt) is None:
                    break
                if pos != last:
                    rt.emit({"progress": 0, "queue_position": pos,
                             "message": f"Waiting for a free slot: position {pos} in the queue"})  # fmt: skip
                    last = pos
                await self._wait_change()
        finally:
            self._queue.remove(rt)
            self._wakeup.set()
        self._admitted.add(rt.key)
        rt.emit({"progress": 5, "message": "Leaving the queue, starting"})

    async def _wait_change(self) -> None:
        """Sleep until something may have freed a slot (or 1 s, to be safe)."""
        self._wakeup = asyncio.Event() if self._wakeup.is_set() else self._wakeup
        watched = [self.manager.get(*k) for k in self._admitted]
        waits = [asyncio.ensure_future(self._wakeup.wait())]
        waits += [asyncio.ensure_future(r.changed.wait()) for r in watched if r is not None]
        try:
            await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def released(self) -> None:
        """Tell the queue a server stopped (after_stop hook)."""
        self._wakeup.set()

    # ---- DB helpers ----------------------------------------------------------------------
    async def _within_named_limit(self, rt: ServerRuntime, limit: int) -> bool:
        """Is this named server among the user's first ``limit`` ones (by creation)?

        The manager creates the row before hooks run, so "count < limit" would be off by one
        for a new server; ordering by id keeps existing servers startable even if the limit
        was lowered later. The API refuses to create rows beyond the limit in the first place.
        """
        from sqlalchemy import select

        from amalthea.hub.store.models import Server

        async with self.manager.db.session() as s:
            rows = await s.execute(
                select(Server.id)
                .where(Server.user_id == rt.user_id, Server.name != "")
                .order_by(Server.id)
                .limit(limit)
            )
            return rt.server_id in {i for (i,) in rows}
