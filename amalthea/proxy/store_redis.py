"""A shared route store in Redis, so several proxy replicas serve the same routes.

``--store redis://host:port/db[?prefix=NAME]`` (needs the ``redis`` extra). Keys, all
under ``NAME`` (default ``amalthea-proxy``):

* ``NAME:routes`` - hash, prefix -> JSON of the route data (what the API received);
* ``NAME:activity`` - sorted set, prefix -> last_activity (epoch seconds), only ever raised
  (``ZADD GT``), so replicas merge their activity by taking the latest;
* ``NAME:changes`` - pub/sub channel announcing every add/delete.

Each replica applies the others' changes as they are announced (:meth:`RedisStore.follow`)
and, once a second, pushes the activity it saw and pulls everyone else's. Writes happen on
route changes and in that once-a-second sync, never per request. A replica that misses
announcements (Redis restarted, connection lost) reloads the whole hash on reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .routes import RouteTable
from .store import StoreRecord

__all__ = ["RedisStore"]

log = logging.getLogger("amalthea.proxy.store")
SYNC_INTERVAL = 1.0


class RedisStore:
    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError as e:
            raise ValueError(
                "--store redis://... needs the redis package: pip install 'amalthea[redis]'"
            ) from e
        parts = urlsplit(url)
        name = parse_qs(parts.query).get("prefix", ["amalthea-proxy"])[0]
        self.url = urlunsplit(parts._replace(query=""))
        self.routes_key = f"{name}:routes"
        self.activity_key = f"{name}:activity"
        self.channel = f"{name}:changes"
        self.replica = uuid.uuid4().hex
        self._r = redis.Redis.from_url(self.url, socket_timeout=5)
        self._pushed: dict[str, float] = {}

    # -- RouteStore --------------------------------------------------------------------
    def load(self) -> list[StoreRecord]:
        try:
            routes: dict[bytes, bytes] = self._r.hgetall(self.routes_key)  # type: ignore[assignment]
            scores: list[tuple[bytes, float]] = self._r.zrange(  # type: ignore[assignment]
                self.activity_key, 0, -1, withscores=True
            )
            activity = dict(scores)
        except Exception as e:  # redis raises its own ConnectionError hierarchy
            raise ValueError(f"cannot read routes from {self.url}: {e}") from e
        out = []
        for prefix_b, data in routes.items():
            ts = float(activity.get(prefix_b, 0.0))
            out.append((prefix_b.decode(), json.loads(data), ts))
        return out

    def put(self, prefix: str, data: dict[str, Any], last_activity: float) -> None:
        p = self._r.pipeline()
        p.hset(self.routes_key, prefix, json.dumps(data))
        p.zadd(self.activity_key, {prefix: last_activity})
        p.publish(self.channel, json.dumps({"op": "put", "prefix": prefix, "from": self.replica}))
        p.execute()
        self._pushed[prefix] = last_activity

    def delete(self, prefix: str) -> None:
        p = self._r.pipeline()
        p.hdel(self.routes_key, prefix)
        p.zrem(self.activity_key, prefix)
        p.publish(self.channel, json.dumps({"op": "del", "prefix": prefix, "from": self.replica}))
        p.execute()
        self._pushed.pop(prefix, None)

    def close(self, routes: Iterable[StoreRecord]) -> None:
        try:
            self._push_activity({p: ts for p, _, ts in routes})
        finally:
            self._r.close()

    # -- replication -------------------------------------------------------------------
    async def follow(self, table: RouteTable) -> None:
        """Apply other replicas' changes and merge activity until cancelled."""
        import redis.asyncio as aredis

        client = aredis.Redis.from_url(self.url)
        try:
            while True:
                try:
                    await self._follow_once(client, table)
                except (OSError, aredis.ConnectionError, aredis.TimeoutError) as e:
                    log.warning("lost Redis at %s (%s); retrying in 1 s", self.url, e)
                    await asyncio.sleep(1)
        finally:
            await client.aclose()

    async def _follow_once(self, client: Any, table: RouteTable) -> None:
        pubsub = client.pubsub()
        await pubsub.subscribe(self.channel)
        try:
            await self._resync(client, table)  # anything missed while not subscribed
            loop = asyncio.get_running_loop()
            next_sync = loop.time() + SYNC_INTERVAL
            while True:
                msg = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=SYNC_INTERVAL
                )
                if msg is not None:
                    await self._apply(client, table, json.loads(msg["data"]))
                if loop.time() >= next_sync:
                    next_sync = loop.time() + SYNC_INTERVAL
                    await self._sync_activity(client, table)
        finally:
            await pubsub.aclose()

    async def _apply(self, client: Any, table: RouteTable, msg: dict[str, str]) -> None:
        if msg.get("from") == self.replica:
            return
        prefix = msg["prefix"]
        if msg["op"] == "del":
            table.remove(prefix)
            return
        raw = await client.hget(self.routes_key, prefix)
        score = await client.zscore(self.activity_key, prefix)
        if raw is not None:
            self._add(table, prefix, json.loads(raw), float(score or 0.0))

    async def _resync(self, client: Any, table: RouteTable) -> None:
        routes = await client.hgetall(self.routes_key)
        activity = dict(await client.zrange(self.activity_key, 0, -1, withscores=True))
        wanted = {
            p.decode(): (json.loads(d), float(activity.get(p, 0.0))) for p, d in routes.items()
        }
        for route in table:
            if route.prefix not in wanted:
                table.remove(route.prefix)
        for prefix, (data, ts) in wanted.items():
            current = table.get(prefix)
            if current is None or current.data != data:
                self._add(table, prefix, data, ts)

    @staticmethod
    def _add(table: RouteTable, prefix: str, data: dict[str, Any], ts: float) -> None:
        try:
            table.add(prefix, data, ts)
        except (ValueError, KeyError) as e:
            log.error("ignoring route %s from Redis: %s", prefix, e)

    async def _sync_activity(self, client: Any, table: RouteTable) -> None:
        fresh = {
            r.prefix: r.last_activity
            for r in table
            if r.last_activity > self._pushed.get(r.prefix, 0.0)
        }
        if fresh:
            await client.zadd(self.activity_key, fresh, gt=True)
            self._pushed.update(fresh)
        for prefix_b, ts in await client.zrange(self.activity_key, 0, -1, withscores=True):
            route = table.get(prefix_b.decode())
            if route is not None and ts > route.last_activity:
                route.last_activity = ts
                self._pushed[route.prefix] = ts

    def _push_activity(self, activity: dict[str, float]) -> None:
        if activity:
            self._r.zadd(self.activity_key, activity, gt=True)
