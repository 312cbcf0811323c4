"""Shared pieces of the REST handlers owned by the RBAC layer: body validation, scope checks
that understand group filters, pagination plumbing. No routes here (no ``handlers`` list).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from tornado import web

from amalthea.hub import rbac
from amalthea.hub.security.identity import Identity
from amalthea.hub.web.api.pagination import (
    Page,
    PaginationError,
    envelope,
    parse_page,
    wants_envelope,
)
from amalthea.hub.web.api.views import Urls
from amalthea.hub.web.base import APIHandler

__all__ = ["RestHandler", "bad", "check_names"]

#: API request bodies are small JSON documents; anything bigger is a mistake or an attack.
MAX_BODY = 1024 * 1024
MAX_NAME = 255


def bad(message: str, status: int = 400) -> web.HTTPError:
    return web.HTTPError(status, reason=message)


def check_names(value: Any, what: str, check_length: bool = True) -> list[str]:
    """A JSON list of non-empty strings, else 400 naming the key. ``check_length=False`` when
    the caller applies a stricter rule with its own message (new usernames: the
    authenticator's ``validate_username``)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"{what} must be a list of strings")
    for v in value:
        if not v or (check_length and len(v) > MAX_NAME):
            raise bad(f"Invalid name in {what}: {v[:80]!r} (1-{MAX_NAME} characters)")
    return list(dict.fromkeys(value))


class RestHandler(APIHandler):
    """APIHandler plus body limits, typed body parsing and group-aware scope checks."""

    async def prepare(self) -> None:
        if len(self.request.body or b"") > MAX_BODY:
            raise bad(f"Request body too large (limit {MAX_BODY} bytes)", 413)
        await super().prepare()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # tornado clears headers before write_error, so a Retry-After set before raising is
        # lost; every 429 of the hub means "limits reached, come back in 30-60 s" (§15)
        if status_code == 429:
            self.set_header("Retry-After", str(random.randint(30, 60)))
        super().write_error(status_code, **kwargs)

    # ---- identity and scopes ------------------------------------------------------------
    @property
    def who(self) -> Identity:
        if self.current_user is None:
            raise bad("Missing or invalid credentials.", 403)
        return self.current_user

    @property
    def held(self) -> frozenset[str]:
        return self.who.scopes

    async def groups_of(self, user: str) -> list[str]:
        from amalthea.hub.rbac.resolve import groups_of_users

        async with self.hub.db.session() as s:
            return (await groups_of_users(s, [user])).get(user, [])

    async def can(self, scope: str, **resource: Any) -> bool:
        held = self.held
        if rbac.covers(held, scope, **resource):
            return True
        owner = resource.get("user") or (resource.get("server") or "").split("/", 1)[0]
        if owner and any(s.startswith(f"{scope}!group=") for s in held):
            groups = await self.groups_of(owner)
            return rbac.covers(held, scope, user_groups=groups, **resource)
        return False

    async def need_any(self, scopes: Iterable[str], **resource: Any) -> Identity:
        """Pass if any of ``scopes`` covers the resource; 404 if one is held for other
        resources (can't tell "exists" from "not yours"), else 403."""
        who = self.who
        wanted = list(scopes)
        for scope in wanted:
            if await self.can(scope, **resource):
                return who
        if resource and any(rbac.any_filter(who.scopes, s) for s in wanted):
            raise bad("No access to resources or resources not found", 404)
        raise bad(
            f"Action is not authorized with current scopes; requires any of [{', '.join(wanted)}]",
            403,
        )

    def forget_permissions(self) -> None:
        """Roles, groups, admin flags or shares changed: drop cached identities now."""
        from amalthea.hub.rbac.resolve import forget_roles

        forget_roles()
        self.hub.identities.forget_all()

    # ---- input --------------------------------------------------------------------------
    def body_object(
        self, allowed: Iterable[str], required: bool = False, empty_ok: bool = True
    ) -> dict[str, Any]:
        body = self.get_json_body()
        if body is None:
            if required:
                raise bad("Request body required (a JSON object)")
            return {}
        if not isinstance(body, dict):
            raise bad(f"Request body must be a JSON object, not {type(body).__name__}")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise bad(f"Unknown keys in request body: {unknown}; allowed: {sorted(allowed)}")
        if not body and not empty_ok:
            raise bad(f"Request body must set at least one of {sorted(allowed)}")
        return body

    def flag(self, name: str) -> bool:
        """Boolean query flag: present and not 0/false/no."""
        value = self.get_argument(name, None)
        if value is None:
            return False
        return value.strip().lower() not in ("0", "false", "no", "off")

    # ---- output -------------------------------------------------------------------------
    @property
    def urls(self) -> Urls:
        return Urls(self.base_url, self.hub.settings.public_url.rstrip("/"))

    def page(self, always_envelope: bool = False) -> tuple[Page, bool]:
        """(offset/limit, answer with the envelope?). The default limit follows the Accept
        header even for always-enveloped share listings (200 without it, as JupyterHub)."""
        asked = wants_envelope(self.request.headers.get("Accept"))
        try:
            page = parse_page(
                self.get_argument("offset", None), self.get_argument("limit", None), asked
            )
        except PaginationError as e:
            raise bad(str(e)) from None
        return page, always_envelope or asked

    def request_url(self) -> str:
        return f"{self.request.protocol}://{self.request.host}{self.request.uri}"

    def write_page(self, items: Any, page: Page, total: int, env: bool) -> None:
        if env:
            self.write_json(envelope(items, page, total, self.request_url()))
        else:
            self.write_json(items)

    def write_empty(self, status: int = 204) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain")
        self.finish()


async def user_id(session: Any, name: str) -> int | None:
    from amalthea.hub.store.models import User

    found = (await session.execute(select(User.id).where(User.name == name))).scalar()
    return None if found is None else int(found)
