"""The CHP REST API: ``/api/routes[/prefix]``, with CHP's status codes.

=======================================  ====================================================
request                                  answer
=======================================  ====================================================
any request without the right token      403, empty body (when a token is configured)
``GET /api/routes[?inactive_since=T]``   200, ``{prefix: {...data, target, last_activity}}``
``GET /api/routes/<prefix>``             200 with that route, or 404
``POST /api/routes/<prefix>`` + JSON     201, empty; 400 if not JSON or no string ``target``
``DELETE /api/routes/<prefix>``          204, or 404
other method on ``/api/routes...``       405
any other path                           404
=======================================  ====================================================

Unlike CHP, the token is checked before a POST body is parsed (CHP answers a bad body 400
even without a token). Every change is written to the route store before the answer.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs

from .metrics import Stats
from .routes import RouteTable
from .smallhttp import Request, Response
from .store import RouteStore

__all__ = ["RoutesAPI"]

log = logging.getLogger("amalthea.proxy.api")
_PATH = re.compile(r"^/api/routes(/.*)?$")
_TOKEN = re.compile(r"token\s+(\S+)", re.IGNORECASE)


def _parse_since(value: str) -> float:
    """CHP accepts what JavaScript's Date parses; we accept ISO 8601 (naive means UTC)."""
    dt = datetime.fromisoformat(value.strip().replace(" ", "+"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class RoutesAPI:
    def __init__(self, table: RouteTable, store: RouteStore, token: str, stats: Stats) -> None:
        self.table = table
        self.store = store
        self.token = token
        self.stats = stats

    def __call__(self, req: Request) -> Response:
        resp = self.handle(req)
        self.stats.api[(req.method, resp.status)] += 1
        log.debug("%s %s -> %d", req.method, req.url.decode("latin-1"), resp.status)
        return resp

    def handle(self, req: Request) -> Response:
        path, _, query = req.url.decode("latin-1").partition("?")
        m = _PATH.match(path)
        if m is None:
            return Response(404, b"Not Found\n", b"text/plain")
        if req.method not in ("GET", "POST", "DELETE"):
            return Response(405, b"Method Not Allowed\n", b"text/plain")
        if not self._authorized(req):
            return Response(403)
        prefix = m.group(1) or "/"
        if req.method == "GET":
            return self._get(prefix, query)
        if req.method == "POST":
            return self._post(prefix, req.body)
        return self._delete(prefix)

    def _authorized(self, req: Request) -> bool:
        if not self.token:
            return True
        m = _TOKEN.match(req.headers.get("authorization", ""))
        return m is not None and hmac.compare_digest(m.group(1), self.token)

    def _get(self, prefix: str, query: str) -> Response:
        if prefix != "/":
            route = self.table.get(prefix)
            if route is None:
                return Response(404)
            return Response(200, json.dumps(route.as_json()).encode())
        params = parse_qs(query)
        since = params.get("inactive_since") or params.get("inactiveSince")
        routes = list(self.table)
        if since:
            try:
                cutoff = _parse_since(since[0])
            except ValueError:
                return Response(
                    400,
                    json.dumps(
                        {"error": f"Invalid datestamp {since[0]!r}: expected ISO 8601"}
                    ).encode(),
                )
            routes = [r for r in routes if r.last_activity < cutoff]
        body = "{" + ", ".join([r.json_item() for r in routes]) + "}"
        return Response(200, body.encode())

    def _post(self, prefix: str, body: bytes) -> Response:
        try:
            data = json.loads(body or b"null")
        except ValueError as e:
            return Response(400, json.dumps({"error": f"Invalid JSON body: {e}"}).encode())
        if not isinstance(data, dict) or not isinstance(data.get("target"), str):
            return Response(400, b"Must specify 'target' as string")
        try:
            route = self.table.add(prefix, data)
        except ValueError as e:
            return Response(400, json.dumps({"error": str(e)}).encode())
        self.store.put(route.prefix, route.data, route.last_activity)
        log.info("added route %s -> %s", route.prefix, route.target.url)
        return Response(201)

    def _delete(self, prefix: str) -> Response:
        route = self.table.remove(prefix)
        if route is None:
            return Response(404)
        self.store.delete(route.prefix)
        log.info("removed route %s", route.prefix)
        return Response(204)
