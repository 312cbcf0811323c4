"""``POST /hub/api/users/NAME/activity`` from single-user servers (protocol §5.3, §8.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import select
from tornado import web

from amalthea.hub.clock import utcnow
from amalthea.hub.store import queries
from amalthea.hub.store.models import Server
from amalthea.hub.web.base import APIHandler


def _parse(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise web.HTTPError(400, reason=f"{what} must be an ISO 8601 timestamp string")
    from dateutil.parser import isoparse  # here, not at the top: keeps it off the hub's start

    try:
        ts = isoparse(value)
    except ValueError:
        raise web.HTTPError(400, reason=f"{what}: cannot parse timestamp {value[:64]!r}") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    if ts > utcnow() + timedelta(minutes=59):
        raise web.HTTPError(400, reason=f"{what} is in the future: {value[:64]}")
    return cast(datetime, ts)


class ActivityHandler(APIHandler):
    async def post(self, name: str) -> None:
        self.need("users:activity", user=name)
        body = self.get_json_body()
        if not isinstance(body, dict) or not ("last_activity" in body or "servers" in body):
            raise web.HTTPError(
                400, reason="Expected {'last_activity': ts} and/or {'servers': {...}}"
            )
        servers = body.get("servers") or {}
        if not isinstance(servers, dict):
            raise web.HTTPError(400, reason="'servers' must be an object")
        last = _parse(body["last_activity"], "last_activity") if "last_activity" in body else None
        per_server: dict[str, datetime] = {}
        for sname, info in servers.items():
            if not isinstance(info, dict) or "last_activity" not in info:
                raise web.HTTPError(400, reason=f"servers[{sname!r}] needs a last_activity")
            per_server[sname] = _parse(info["last_activity"], f"servers[{sname!r}].last_activity")
        if last is None and not per_server:
            raise web.HTTPError(400, reason="No activity given: set last_activity or servers")
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                raise web.HTTPError(404, reason=f"No such user {name}")
            rows = {}
            if per_server:
                result = await s.execute(
                    select(Server).where(Server.user_id == user.id, Server.name.in_(per_server))
                )
                rows = {r.name: r for r in result.scalars()}
            for sname, ts in per_server.items():
                if sname not in rows:
                    raise web.HTTPError(400, reason=f"No such server '{sname}' for user {name}")
                rows[sname].last_activity = queries.bump(rows[sname].last_activity, ts)
            newest = max([*per_server.values(), *([last] if last else [])])
            user.last_activity = queries.bump(user.last_activity, newest)
            await s.commit()
        self.set_header("Content-Type", "text/plain")
        self.finish()


handlers = [(r"/users/([^/]+)/activity", ActivityHandler)]
