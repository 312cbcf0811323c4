"""ServerManager: spawns, watches and stops single-user servers; the only writer of server state.

One :class:`ServerRuntime` per (user, server name) the hub is handling. Its ``state`` follows
``states.py``; every change is saved to the ``servers`` row so a restarted hub can find running
servers again (``reconcile``) from ``spawner_state``. Progress events are kept on the runtime
and fanned out to any number of SSE listeners.

Extension points for other parts of the hub (spawn limits, queues, hooks) without editing this
file: append async callables to ``before_spawn`` (raise :class:`SpawnRefused` to refuse, e.g.
429 with ``retry_after``) or ``after_stop``.

Timing the hub adds to a spawn, beyond the spawner's own start: one DB transaction to mint the
token and OAuth client, readiness polling every 10-100 ms, one proxy API call, one DB commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from amalthea.hub.clock import utcnow
from amalthea.hub.lifecycle import states
from amalthea.hub.lifecycle.env import HubURLs, client_id, server_env, server_prefix
from amalthea.hub.lifecycle.exit_reason import explain_exit
from amalthea.hub.lifecycle.readiness import http_status
from amalthea.hub.lifecycle.states import ServerState
from amalthea.hub.security.tokens import hash_token
from amalthea.hub.store import queries
from amalthea.hub.store.db import Database
from amalthea.hub.store.models import APIToken, OAuthClient, Server, User
from amalthea.spawners.base import ProgressEvent, SpawnContext, Spawner, SpawnError

__all__ = ["ServerManager", "ServerRuntime", "SpawnRefused"]

log = logging.getLogger("amalthea.lifecycle")

SpawnerFactory = Callable[[SpawnContext], Spawner]
OptionsHook = Callable[[User, str, "dict[str, Any] | None"], Awaitable["dict[str, Any] | None"]]


class SpawnRefused(Exception):
    """A spawn/stop request that cannot proceed; ``status`` maps to the HTTP answer."""

    def __init__(self, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass
class ServerRuntime:
    username: str
    name: str
    user_id: int
    server_id: int
    prefix: str
    state: ServerState = ServerState.STOPPED
    spawner: Spawner | None = None
    url: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    failure: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> tuple[str, str]:
        return (self.username, self.name)

    @property
    def ready(self) -> bool:
        return self.state is ServerState.RUNNING

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.notify()

    def notify(self) -> None:
        old, self.changed = self.changed, asyncio.Event()
        old.set()


class ServerManager:
    def __init__(
        self,
        db: Database,
        proxy: Any,
        spawner_factory: SpawnerFactory,
        urls: HubURLs,
        data_dir: str,
        hub_target: str,
        slow_spawn_timeout: float = 10.0,
        slow_stop_timeout: float = 10.0,
        start_timeout: float | None = None,
        http_timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.db = db
        self.proxy = proxy
        self.spawner_factory = spawner_factory
        self.urls = urls
        self.data_dir = data_dir
        self.hub_target = hub_target
        self.slow_spawn_timeout = slow_spawn_timeout
        self.slow_stop_timeout = slow_stop_timeout
        self._start_timeout = start_timeout
        self._http_timeout = http_timeout
        self._poll_interval = poll_interval
        self.runtimes: dict[tuple[str, str], ServerRuntime] = {}
        self.before_spawn: list[Callable[[ServerRuntime], Awaitable[None]]] = []
        # awaited inside the spawn task after the server turned pending (spawn queue: the
        # wait shows in the progress stream and is cancelled with the spawn) -- RBAC helper
        self.before_start: list[Callable[[ServerRuntime], Awaitable[None]]] = []
        # routes the route sync must keep besides servers (services) -- RBAC helper
        self.extra_routes: list[Callable[[], dict[str, tuple[str, dict[str, Any]]]]] = []
        self.after_stop: list[Callable[[ServerRuntime], Awaitable[None]]] = []
        # (user, server name, user_options or None) -> the options to use; raise SpawnRefused
        # to refuse (profiles: amalthea.hub.lifecycle.profiles_glue)
        self.resolve_options: list[OptionsHook] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None

    # ---- queries -----------------------------------------------------------------------
    def get(self, username: str, name: str = "") -> ServerRuntime | None:
        return self.runtimes.get((username, name))

    def state_of(self, username: str, name: str = "") -> ServerState:
        rt = self.get(username, name)
        return rt.state if rt else ServerState.STOPPED

    def pending_count(self) -> int:
        return sum(1 for rt in self.runtimes.values() if rt.state is ServerState.PENDING)

    def active_count(self) -> int:
        return sum(1 for rt in self.runtimes.values() if rt.state.active)

    # ---- spawn ---------------------------------------------------------------------------
    async def spawn(
        self, user: User, name: str = "", user_options: dict[str, Any] | None = None
    ) -> ServerRuntime:
        """Begin a spawn and return at once; await :meth:`wait` for the outcome."""
        rt = await self._runtime(user, name)
        async with rt.lock:
            if rt.state is ServerState.PENDING:
                return rt
            if rt.state is ServerState.RUNNING:
                raise SpawnRefused(f"{user.name}{'/' + name if name else ''} is already running")
            if rt.state is ServerState.STOPPING:
                raise SpawnRefused(f"{user.name}{'/' + name if name else ''} is pending stop")
            for resolve in self.resolve_options:
                user_options = await resolve(user, name, user_options)
            for hook in self.before_spawn:
                await hook(rt)
            self._transition(rt, ServerState.PENDING)
            rt.events = []
            rt.failure = None
            rt.emit({"progress": 0, "message": "Server requested"})
            rt.task = self._own(self._spawn(rt, user, user_options))
        return rt

    async def _runtime(self, user: User, name: str) -> ServerRuntime:
        rt = self.runtimes.get((user.name, name))
        if rt is not None:
            return rt
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(Server).where(Server.user_id == user.id, Server.name == name)
                )
            ).scalar()
            if row is None:
                row = Server(user_id=user.id, name=name, state="stopped")
                s.add(row)
                await s.commit()
            rt = ServerRuntime(
                user.name, name, user.id, row.id, server_prefix(self.urls.base_url, user.name, name)
            )
            rt.state = ServerState(row.state) if row.state == "failed" else ServerState.STOPPED
            rt.failure = row.failure
        return self.runtimes.setdefault(rt.key, rt)

    async def _spawn(self, rt: ServerRuntime, user: User, options: dict[str, Any] | None) -> None:
        spawner: Spawner | None = None
        try:
            for hook in self.before_start:
                await hook(rt)
            token = await self._mint_credentials(rt, options)
            spawner = self._make_spawner(rt, user, token, options or {})
            rt.spawner = spawner
            rt.emit({"progress": 50, "message": "Spawning server..."})
            addr = await self._start(spawner)
            rt.url = addr.url
            await self._wait_http(rt, spawner)
            await self.proxy.add_route(
                rt.prefix, rt.url, {"user": rt.username, "server_name": rt.name}
            )
            await self._save(rt, state="running", url=rt.url, spawner_state=spawner.get_state())
            # event first, then the state change: a listener woken by the change must find the
            # final event already queued
            rt.emit({
                "progress": 100, "ready": True, "message": f"Server ready at {rt.prefix}",
                "html_message": f'Server ready at <a href="{rt.prefix}">{rt.prefix}</a>',
                "url": rt.prefix,
            })  # fmt: skip
            self._transition(rt, ServerState.RUNNING)
            log.info("server %s ready at %s", rt.prefix, rt.url)
        except asyncio.CancelledError:
            await self._fail(rt, spawner, "Spawn cancelled", "hub", cancelled=True)
            raise
        except SpawnError as e:
            await self._fail(rt, spawner, e.user_message, e.layer, e.log_tail)
        except Exception as e:  # a spawner bug must not take the hub down
            log.exception("spawn of %s failed", rt.prefix)
            await self._fail(rt, spawner, f"{type(e).__name__}: {e}", "spawner")

    async def _mint_credentials(self, rt: ServerRuntime, options: dict[str, Any] | None) -> str:
        access = f"access:servers!server={rt.username}/{rt.name}"
        async with self.db.session() as s:
            await self._delete_credentials(s, rt)
            cid = client_id(rt.username, rt.name)
            token, _row = await queries.create_token(
                s, user_id=rt.user_id, note=f"Server at {rt.prefix}",
                scopes=[access, f"users:activity!user={rt.username}"],
            )  # fmt: skip
            s.add(
                OAuthClient(
                    identifier=cid,
                    description=f"Server at {rt.prefix}",
                    secret=hash_token(token),
                    redirect_uri=f"{rt.prefix}oauth_callback",
                    allowed_scopes=[access],
                )
            )
            row = await s.get(Server, rt.server_id)
            assert row is not None
            now = utcnow()
            row.state, row.started, row.last_activity, row.failure = "pending", now, now, None
            row.url = None
            if options is not None:
                row.user_options = options
            await s.commit()
        return token

    async def _delete_credentials(self, s: Any, rt: ServerRuntime) -> None:
        await s.execute(
            delete(APIToken).where(
                APIToken.user_id == rt.user_id, APIToken.note == f"Server at {rt.prefix}"
            )
        )
        await s.execute(
            delete(OAuthClient).where(OAuthClient.identifier == client_id(rt.username, rt.name))
        )

    def _make_spawner(
        self, rt: ServerRuntime, user: User, token: str, options: dict[str, Any]
    ) -> Spawner:
        ctx = SpawnContext(
            username=rt.username, server_name=rt.name, env={}, user_options=options,
            groups=[g.name for g in user.groups], admin=user.admin, data_dir=self.data_dir,
        )  # fmt: skip
        spawner = self.spawner_factory(ctx)
        port = spawner.port or _free_port(spawner.ip or "127.0.0.1")
        spawner.port = port
        ctx.env.update(server_env(self.urls, rt.username, rt.name, token, spawner.ip, port))
        return spawner

    async def _start(self, spawner: Spawner) -> Any:
        timeout = self._start_timeout or spawner.start_timeout

        async def relay() -> None:
            rt = self.runtimes[(spawner.context.username, spawner.context.server_name)]
            async for ev in spawner.progress():
                rt.emit(_event_dict(ev))

        relay_task = asyncio.create_task(relay())
        try:
            async with asyncio.timeout(timeout):
                return await spawner.start()
        except TimeoutError:
            raise SpawnError(
                f"The spawner did not start the server within {timeout:g} seconds "
                "(c.Spawner.start_timeout).",
                layer="spawner",
            ) from None
        finally:
            relay_task.cancel()

    async def _wait_http(self, rt: ServerRuntime, spawner: Spawner) -> None:
        timeout = self._http_timeout or spawner.http_timeout
        url = f"{rt.url}{rt.prefix}api"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.01
        while loop.time() < deadline:
            status = await http_status(url, timeout=max(0.5, min(5.0, deadline - loop.time())))
            if status is not None and status < 500:
                return
            code = await spawner.poll()
            if code is not None:
                raise await explain_exit(spawner, SpawnError(
                    f"The single-user server exited with status {code} before it answered HTTP.",
                    layer="single-user server",
                ))  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        raise SpawnError(
            f"Server at {url} didn't respond in {timeout:g} seconds (c.Spawner.http_timeout).",
            layer="single-user server",
        )

    async def _fail(
        self,
        rt: ServerRuntime,
        spawner: Spawner | None,
        message: str,
        layer: str,
        log_tail: list[str] | None = None,
        cancelled: bool = False,
    ) -> None:
        if spawner is not None:
            try:
                await spawner.stop(now=True)
            except Exception:
                log.exception("stopping failed spawn of %s", rt.prefix)
            if not log_tail:
                try:
                    log_tail = await spawner.logs(
                        spawner.log_lines if spawner.log_lines < 50 else 50
                    )
                except Exception:
                    log_tail = []
        rt.failure = {"message": message, "layer": layer, "log_tail": log_tail or []}
        rt.spawner, rt.url = None, None
        new = ServerState.STOPPED if rt.state is ServerState.STOPPING else ServerState.FAILED
        async with self.db.session() as s:
            await self._delete_credentials(s, rt)
            await s.commit()
        await self._save(rt, state=new.value, url=None, spawner_state=None, failure=rt.failure)
        msg = message if cancelled else f"Spawn failed: {message}"
        log.warning("spawn of %s failed (%s): %s", rt.prefix, layer, message)
        rt.emit({"progress": 100, "failed": True, "message": msg, "layer": layer,
                 "log_tail": rt.failure["log_tail"]})  # fmt: skip
        self._transition(rt, new)

    async def wait(self, rt: ServerRuntime, timeout: float) -> bool:
        """True if the spawn/stop in progress finished within ``timeout`` seconds."""
        if rt.task is None or rt.task.done():
            return True
        done, _ = await asyncio.wait({rt.task}, timeout=timeout)
        return bool(done)

    async def progress(self, rt: ServerRuntime) -> AsyncIterator[dict[str, Any]]:
        """All events of the current spawn, then new ones until ready/failed."""
        i = 0
        while True:
            while i < len(rt.events):
                ev = rt.events[i]
                i += 1
                yield ev
                if ev.get("ready") or ev.get("failed"):
                    return
            if rt.state is not ServerState.PENDING:
                return
            await rt.changed.wait()

    # ---- stop ----------------------------------------------------------------------------
    async def stop(self, username: str, name: str = "") -> ServerRuntime | None:
        """Begin stopping; await :meth:`wait` for the outcome. None if nothing to stop."""
        rt = self.get(username, name)
        if rt is None or not rt.state.active:
            return rt
        if rt.state is ServerState.STOPPING:
            return rt
        spawn_task = rt.task if rt.state is ServerState.PENDING else None
        self._transition(rt, ServerState.STOPPING)
        rt.task = self._own(self._stop(rt, spawn_task))
        return rt

    async def _stop(self, rt: ServerRuntime, spawn_task: asyncio.Task[None] | None) -> None:
        if spawn_task is not None and not spawn_task.done():
            spawn_task.cancel()
            await asyncio.gather(spawn_task, return_exceptions=True)
        try:
            await self.proxy.delete_route(rt.prefix)
        except Exception:
            log.exception("removing route %s", rt.prefix)
        if rt.spawner is not None:
            try:
                await rt.spawner.stop()
            except Exception:
                log.exception("spawner.stop for %s", rt.prefix)
        async with self.db.session() as s:
            await self._delete_credentials(s, rt)
            await s.commit()
        rt.spawner, rt.url = None, None
        if rt.state is ServerState.STOPPING:
            self._transition(rt, ServerState.STOPPED)
        await self._save(rt, url=None, spawner_state=None, started=None)
        for hook in self.after_stop:
            await hook(rt)
        log.info("server %s stopped", rt.prefix)

    async def _died(self, rt: ServerRuntime, status: int) -> None:
        """A running server exited on its own (noticed by poll)."""
        async with rt.lock:
            if rt.state is not ServerState.RUNNING:
                return
            log.warning("server %s exited with status %s", rt.prefix, status)
            why = SpawnError(f"The server exited with status {status}.", layer="single-user server")
            if rt.spawner:
                why = await explain_exit(rt.spawner, why)
            tail = why.log_tail or (await rt.spawner.logs(50) if rt.spawner else [])
            try:
                await self.proxy.delete_route(rt.prefix)
            except Exception:
                log.exception("removing route %s", rt.prefix)
            async with self.db.session() as s:
                await self._delete_credentials(s, rt)
                await s.commit()
            rt.spawner, rt.url = None, None
            self._transition(rt, ServerState.STOPPED)
            rt.failure = {"message": why.user_message, "layer": why.layer, "log_tail": tail}
            await self._save(rt, url=None, spawner_state=None, started=None, failure=rt.failure)

    # ---- restart reconciliation, polling, shutdown ---------------------------------------
    async def reconcile(self) -> None:
        """Find servers a previous hub left running; adopt the live ones, clean up the rest."""
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(Server, User)
                    .join(User, Server.user_id == User.id)
                    .where(Server.state.in_(["pending", "running", "stopping"]))
                )
            ).all()
        await asyncio.gather(*(self._adopt(srv, user) for srv, user in rows))

    async def _adopt(self, srv: Server, user: User) -> None:
        rt = ServerRuntime(
            user.name,
            srv.name,
            user.id,
            srv.id,
            server_prefix(self.urls.base_url, user.name, srv.name),
        )
        self.runtimes[rt.key] = rt
        alive = False
        if srv.spawner_state and srv.url:
            ctx = SpawnContext(username=user.name, server_name=srv.name, env={},
                               user_options=srv.user_options or {}, data_dir=self.data_dir)  # fmt: skip
            try:
                spawner = self.spawner_factory(ctx)
                spawner.load_state(srv.spawner_state)
                alive = await spawner.poll() is None
            except Exception:
                log.exception("could not check server %s after restart", rt.prefix)
            if alive:
                status = await http_status(f"{srv.url}{rt.prefix}api", timeout=2.0)
                alive = status is not None and status < 500
        if alive and srv.state == "running":
            rt.spawner, rt.url, rt.state = spawner, srv.url, ServerState.RUNNING
            log.info("found running server %s at %s", rt.prefix, rt.url)
            return
        if alive:
            await spawner.stop(now=True)
        async with self.db.session() as s:
            await self._delete_credentials(s, rt)
            await s.commit()
        rt.state = ServerState.STOPPED
        await self._save(rt, url=None, spawner_state=None, started=None)
        log.info("server %s was not running any more after restart; marked stopped", rt.prefix)

    async def sync_routes(self) -> None:
        """Make the proxy's table match: hub route, one route per running server, nothing else."""
        routes = await self.proxy.get_all_routes()
        want: dict[str, tuple[str, dict[str, Any]]] = {"/": (self.hub_target, {"hub": True})}
        for rt in self.runtimes.values():
            if rt.state is ServerState.RUNNING and rt.url:
                want[rt.prefix] = (rt.url, {"user": rt.username, "server_name": rt.name})
        for extra in self.extra_routes:
            want.update(extra())
        pending = {rt.prefix for rt in self.runtimes.values() if rt.state is ServerState.PENDING}
        jobs = []
        for spec, (target, data) in want.items():
            have = routes.get(spec)
            if have is None or have.get("target") != target:
                jobs.append(self.proxy.add_route(spec, target, data))
        for spec, route in routes.items():
            if spec not in want and spec not in pending and route.get("data", {}).get("jupyterhub"):
                jobs.append(self.proxy.delete_route(spec))
        await asyncio.gather(*jobs)

    def start_polling(self, interval: float = 30.0) -> None:
        self._poller = asyncio.create_task(self._poll_loop(self._poll_interval or interval))

    async def _poll_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for rt in list(self.runtimes.values()):
                if rt.state is ServerState.RUNNING and rt.spawner is not None:
                    try:
                        status = await rt.spawner.poll()
                    except Exception:
                        log.exception("poll of %s", rt.prefix)
                        continue
                    if status is not None:
                        await self._died(rt, status)

    async def shutdown(self, stop_servers: bool) -> None:
        if self._poller:
            self._poller.cancel()
        for rt in list(self.runtimes.values()):
            if rt.state is ServerState.PENDING and rt.task:
                rt.task.cancel()  # a half-started server is not worth keeping
        if stop_servers:
            running = [self.stop(rt.username, rt.name) for rt in list(self.runtimes.values())]
            stopped = [r for r in await asyncio.gather(*running) if r is not None]
            await asyncio.gather(*(self.wait(r, 30) for r in stopped))
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    # ---- internals -----------------------------------------------------------------------
    def _transition(self, rt: ServerRuntime, new: ServerState) -> None:
        rt.state = states.check(rt.state, new)
        rt.notify()

    async def _save(self, rt: ServerRuntime, **values: Any) -> None:
        async with self.db.session() as s:
            row = await s.get(Server, rt.server_id)
            if row is None:
                return
            row.state = values.pop("state", rt.state.value)
            for k, v in values.items():
                setattr(row, k, v)
            await s.commit()

    def _own(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _event_dict(ev: ProgressEvent) -> dict[str, Any]:
    # spawner events may never claim ready/failed: only the hub decides that
    return {"progress": max(0, min(99, ev.progress)), "message": ev.message}


def _free_port(ip: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])
