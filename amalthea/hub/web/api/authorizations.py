"""Deprecated ``/authorizations/...`` endpoints, kept for old clients (protocol §5.10).

``GET /authorizations/token/TOKEN`` answers the model of the token's owner (filtered by the
caller's scopes); new clients call ``GET /user`` with the token instead.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, or_, select

from amalthea.hub.clock import utcnow
from amalthea.hub.security.tokens import hash_token, plausible
from amalthea.hub.store.models import APIToken, Service
from amalthea.hub.store.reads import reader_for
from amalthea.hub.web.api._support import RestHandler, bad
from amalthea.hub.web.api.views import UserView, load_users

log = logging.getLogger("amalthea.api")


class TokenOwnerHandler(RestHandler):
    async def get(self, token: str) -> None:
        self.who  # noqa: B018 -- any valid identity, else 403
        log.warning("/authorizations/token/:token is deprecated; use GET /hub/api/user")
        if not plausible(token):
            raise bad("No such token", 404)
        hashed, live = hash_token(token), self.hub.servers

        def read(conn: Connection) -> tuple[str, Any]:
            row = conn.execute(
                select(APIToken.user_id, APIToken.service_id).where(
                    APIToken.hashed == hashed,
                    or_(APIToken.expires_at.is_(None), APIToken.expires_at > utcnow()),
                )
            ).first()
            if row is None:
                return "", None
            if row[0] is not None:
                return "user", load_users(conn, [row[0]], live=live)
            return "service", conn.execute(
                select(Service.name, Service.admin).where(Service.id == row[1])).first()  # fmt: skip

        kind, found = await reader_for(self.hub).run(read)
        if not found:
            raise bad("No such token", 404)
        if kind == "user":
            self.write_json(UserView(self.held).model(self.urls, found[0]))
        else:
            self.write_json({"kind": "service", "name": found[0], "admin": found[1]})


class TokenCreateHandler(RestHandler):
    async def post(self) -> None:
        raise bad("Deprecated endpoint: create tokens with POST /hub/api/users/:user/tokens", 404)


class CookieHandler(RestHandler):
    async def get(self, name: str, value: str = "") -> None:
        raise bad("Cookie authorization is no longer supported: use OAuth and GET /hub/api/user",
                  404)  # fmt: skip


handlers = [
    (r"/authorizations/token", TokenCreateHandler),
    (r"/authorizations/token/([^/]+)", TokenOwnerHandler),
    (r"/authorizations/cookie/([^/]+)(?:/([^/]*))?", CookieHandler),
]
