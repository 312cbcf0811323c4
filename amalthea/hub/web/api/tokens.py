"""``/users/NAME/tokens[/ID]``: list, create (scopes, expiry, note), read, revoke (§3.4, §5.6).

A new token never carries more than its owner holds, nor more than the requester holds when
someone else (an admin, a service) creates it: requested scopes are expanded for the owner and
must be covered by both, else 400 naming the scopes. ``roles`` are converted to scopes once.
Passing no credentials but ``{"auth": {"username", "password"}}`` logs in through the
authenticator first (how scripts bootstrap a token from a password).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import delete, or_, select

from amalthea.auth.base import AuthError, LoginRequest
from amalthea.hub import rbac
from amalthea.hub.clock import utcnow
from amalthea.hub.rbac import resolve
from amalthea.hub.security.identity import Identity
from amalthea.hub.security.ratelimit import login_keys
from amalthea.hub.store import queries
from amalthea.hub.store.models import APIToken, OAuthClient, Role, User
from amalthea.hub.web.api._support import RestHandler, bad
from amalthea.hub.web.api.views import token_model

MAX_NOTE = 1023
log = logging.getLogger("amalthea.tokens")


class Throttled(Exception):
    """Too many failed password attempts from this client or for this account."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def _token_id(raw: str) -> int:
    if not raw.startswith("a") or not raw[1:].isdigit() or len(raw) > 20:
        raise bad(f"No such token {raw[:40]!r}", 404)
    return int(raw[1:])


async def _models(s: Any, rows: list[APIToken], owner: str) -> list[dict[str, Any]]:
    client_ids = {r.client_id for r in rows}
    clients = {
        c.identifier: c
        for c in (await s.execute(
            select(OAuthClient).where(OAuthClient.identifier.in_(client_ids)))).scalars()
    }  # fmt: skip
    out = []
    for row in rows:
        scopes = await resolve.token_scopes(s, row)
        out.append(token_model(row, "user", owner, scopes, clients.get(row.client_id)))
    return out


class TokenListHandler(RestHandler):
    async def get(self, name: str) -> None:
        await self.need_any(["read:tokens"], user=name)
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                raise bad(f"No such user {name[:80]}", 404)
            now = utcnow()
            await s.execute(delete(APIToken).where(
                APIToken.user_id == user.id, APIToken.expires_at.is_not(None),
                APIToken.expires_at < now))  # fmt: skip
            await s.commit()
            rows = list((await s.execute(
                select(APIToken).where(APIToken.user_id == user.id)
                .order_by(APIToken.last_activity.desc().nulls_last(), APIToken.created.desc())
            )).scalars())  # fmt: skip
            models = await _models(s, rows, name)
        self.write_json({"api_tokens": models})

    async def _password_login(self, body: Any) -> Identity | None:
        """Log in with ``{"auth": {"username", "password"}}``, through the same throttle as
        the login form (security/ratelimit.py): 429 while the client's or the account's bucket
        is drained, and every failed attempt drains both."""
        auth = body.get("auth") if isinstance(body, dict) else None
        if not isinstance(auth, dict):
            return None
        form = {k: v for k, v in auth.items() if isinstance(v, str)}
        ip = self.request.remote_ip or ""
        keys = login_keys(ip, form.get("username", ""))
        throttle = self.hub.throttle
        wait = throttle.retry_after(*keys)
        if wait > 0:
            raise Throttled(int(wait) + 1)
        try:
            result = await self.hub.authenticator.login(LoginRequest(form=form, remote_ip=ip))
        except AuthError as e:
            if e.status != 400:  # a malformed name is not a password guess (as the form)
                throttle.failed(*keys)
            return None
        except Exception:
            log.exception("password login for a token failed in the authenticator")
            return None
        if result is None:
            throttle.failed(*keys)
            return None
        throttle.succeeded(keys[1])
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, result.name)
            if user is None:
                return None
            scopes = await resolve.user_scopes(s, user)
            return Identity("user", user.name, user.id, user.admin,
                            tuple(g.name for g in user.groups), scopes=scopes)  # fmt: skip

    async def post(self, name: str) -> None:
        raw = self.get_json_body()
        if self.current_user is None:
            try:
                self.current_user = await self._password_login(raw)
            except Throttled as t:
                self._answer_throttled(t.retry_after)
                return
            if self.current_user is None:
                raise bad("Missing or invalid credentials.", 403)
        if isinstance(raw, dict):
            raw.pop("auth", None)
        if not await self.can("tokens", user=name):
            raise bad(f"User {name[:80]} not found or no permissions to generate tokens", 403)
        body = self._validate(raw)
        expires_in = self._capped_expiry(body.get("expires_in"))
        who = self.who
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                raise bad(f"User {name[:80]} not found or no permissions to generate tokens", 403)
            scopes = await self._scopes(s, body, user)
            note = body.get("note") or "Requested via api"
            if who.kind != "user" or who.name != name:
                note += f" by {who.kind} {who.name}"
            token, row = await queries.create_token(
                s, user_id=user.id, note=note[:MAX_NOTE], scopes=scopes,
                expires_in=expires_in,
            )  # fmt: skip
            await s.commit()
            row = (await s.execute(select(APIToken).where(APIToken.id == row.id))).scalar_one()
            model = (await _models(s, [row], name))[0]
        model["token"] = token
        self.write_json(model, 201)

    def _answer_throttled(self, retry_after: int) -> None:
        # written here, not raised: RestHandler.write_error gives every other 429 a generic
        # 30-60 s Retry-After, and this one knows when the bucket refills
        self.set_header("Retry-After", str(retry_after))
        self.write_json({"status": 429, "message": "Too many failed logins. Try again in "
                         f"{retry_after} s."}, 429)  # fmt: skip

    def _capped_expiry(self, requested: float | None) -> float | None:
        """Apply ``token_expires_in_max_seconds``: no expiry asked → the cap; above it → 400."""
        cap = self.hub.settings.token_expires_in_max_seconds
        if not cap:
            return requested
        if requested is None:
            return cap
        if requested > cap:
            raise bad(
                f"expires_in={requested:g} is longer than this hub allows: tokens may live at most "
                f"{cap} seconds (c.Amalthea.token_expires_in_max_seconds). Ask for {cap} or less."
            )
        return requested

    def _validate(self, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise bad("Request body must be a JSON object")
        unknown = sorted(set(raw) - {"note", "expires_in", "scopes", "roles"})
        if unknown:
            raise bad(f"Unknown keys in token request: {unknown}")
        if "note" in raw and not isinstance(raw["note"], str | None):
            raise bad("note must be a string")
        if len(raw.get("note") or "") > MAX_NOTE:
            raise bad(f"note is too long (max {MAX_NOTE} characters)")
        exp = raw.get("expires_in")
        if exp is not None and (isinstance(exp, bool) or not isinstance(exp, int | float)
                                or exp <= 0 or exp > 10 * 365 * 86400):  # fmt: skip
            raise bad("expires_in must be a positive number of seconds (at most 10 years) or null")
        for key in ("scopes", "roles"):
            if (
                key in raw
                and raw[key] is not None
                and (
                    not isinstance(raw[key], list) or not all(isinstance(x, str) for x in raw[key])
                )
            ):
                raise bad(f"{key} must be a list of strings")
        if raw.get("scopes") is not None and raw.get("roles") is not None:
            raise bad("Specify token permissions with 'scopes' or 'roles', not both")
        return raw

    async def _scopes(self, s: Any, body: dict[str, Any], user: User) -> list[str]:
        requested: list[str]
        if body.get("roles") is not None:
            names = body["roles"]
            found = {r.name: r.scopes for r in (await s.execute(
                select(Role).where(Role.name.in_(names)))).scalars()}  # fmt: skip
            missing = sorted(set(names) - set(found))
            if missing:
                raise bad(f"No such role(s): {missing}")
            requested = [sc for n in names for sc in found[n]]
        elif body.get("scopes") is not None:
            requested = list(body["scopes"])
        else:
            return ["inherit"]
        for scope in requested:
            try:
                rbac.validate(scope)
            except rbac.ScopeError as e:
                raise bad(str(e)) from None
        if "inherit" in requested:
            return ["inherit"]
        subject = rbac.Subject("user", user.name, tuple(g.name for g in user.groups))
        wanted = rbac.expand(requested, subject)
        owner = await resolve.user_scopes(s, user)
        groups = await resolve.groups_of_users(s, {user.name} | set(_named(wanted)))
        missing = rbac.not_covered(owner, wanted, groups)
        if missing:
            raise bad(f"Not assigning requested scopes {missing} not held by User {user.name}")
        missing = rbac.not_covered(self.held, wanted, groups)
        if missing:
            raise bad(f"Not assigning requested scopes {missing} not held by "
                      f"{self.who.kind} {self.who.name}")  # fmt: skip
        return requested


def _named(scopes: Any) -> set[str]:
    from amalthea.hub.rbac.scopes import users_named

    return users_named(scopes)


class TokenHandler(RestHandler):
    async def _row(self, s: Any, name: str, token_id: str) -> APIToken:
        tid = _token_id(token_id)
        row = (await s.execute(
            select(APIToken).join(User, User.id == APIToken.user_id)
            .where(APIToken.id == tid, User.name == name,
                   or_(APIToken.expires_at.is_(None), APIToken.expires_at > utcnow()))
        )).scalar()  # fmt: skip
        if row is None:
            raise bad(f"No such token {token_id[:40]} for user {name[:80]}", 404)
        return cast(APIToken, row)

    async def get(self, name: str, token_id: str) -> None:
        await self.need_any(["read:tokens"], user=name)
        async with self.hub.db.session() as s:
            row = await self._row(s, name, token_id)
            model = (await _models(s, [row], name))[0]
        self.write_json(model)

    async def delete(self, name: str, token_id: str) -> None:
        await self.need_any(["tokens"], user=name)
        async with self.hub.db.session() as s:
            row = await self._row(s, name, token_id)
            cond = APIToken.id == row.id
            if row.client_id and row.client_id != queries.HUB_CLIENT_ID:
                # OAuth tokens: revoking one revokes this user's grant to that client
                cond = (APIToken.user_id == row.user_id) & (APIToken.client_id == row.client_id)
            hashes = list((await s.execute(select(APIToken.hashed).where(cond))).scalars())
            await s.execute(delete(APIToken).where(cond))
            await s.commit()
        for h in hashes:
            self.hub.identities.forget(h)
        self.write_empty(204)


handlers = [
    (r"/users/([^/]+)/tokens", TokenListHandler),
    (r"/users/([^/]+)/tokens/([^/]+)", TokenHandler),
]
