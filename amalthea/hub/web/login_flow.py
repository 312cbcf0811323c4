"""Finishing a login from any handler: the hub's form/header login and plugin redirect handlers.

Redirect authenticators (OIDC, LTI) finish on their own Tornado handlers, which are plain
``RequestHandler`` subclasses from ``amalthea.auth`` (they cannot import the hub). So everything
here takes the handler as a ``RequestHandler`` and the hub from ``handler.settings["hub"]``.

Order, for every kind of login: ``Authenticator.finish_login`` policy (normalise, validate,
admin, allow/block) → second-factor gate (local accounts in ``mfa_required_groups`` that have
not enrolled are sent to enrol first, with no session yet) → :class:`~amalthea.hub.logins.Logins`
stores the result → session cookies → redirect to a safe ``next``.

Refusals: the person sees ``AuthError.user_message``; the admin's log gets ``log_message`` once
(plugins that already logged it set ``AuthError.logged``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado.web import RequestHandler

from amalthea.auth.base import AuthError, AuthResult
from amalthea.hub.lifecycle import ServerState
from amalthea.hub.security.redirects import safe_next
from amalthea.hub.store import queries
from amalthea.hub.store.session_writer import writer_for

__all__ = ["complete_login", "log_refusal", "next_after_login", "pending_enrolment"]

log = logging.getLogger("amalthea.login")

#: signed cookie naming the person who passed the password check but must enrol a second factor
MFA_PENDING_COOKIE = "amalthea-mfa-pending"
MFA_PENDING_MINUTES = 10


def log_refusal(error: AuthError, where: str) -> None:
    if error.logged or not error.log_message:
        return
    level = logging.INFO if error.status in (400, 401) else logging.WARNING
    log.log(level, "login refused (%s, %d): %s", where, error.status, error.log_message)
    error.logged = True


async def next_after_login(hub: Any, name: str, next_url: str = "") -> str:
    settings = hub.settings
    nxt = safe_next(next_url, settings.base_url)
    if nxt:
        return str(nxt)
    if hub.servers.state_of(name) is ServerState.RUNNING:
        from urllib.parse import quote

        return f"{settings.base_url}user/{quote(name, safe='@~')}/"
    return str(settings.hub_prefix) + ("spawn" if settings.redirect_to_server else "home")


async def complete_login(handler: RequestHandler, result: AuthResult, next_url: str = "") -> None:
    """The AuthContext.complete_login callback, and the end of form and header logins."""
    hub = handler.settings["hub"]
    try:
        result = hub.authenticator.finish_login(result)
    except AuthError as e:
        _refuse(handler, e, result.name, next_url)
        return
    if await _must_enrol(hub, result.name):
        _remember_pending(handler, result, next_url)
        handler.redirect(hub.settings.hub_prefix + "mfa/enrol")
        return
    await log_in(handler, result, next_url)


async def log_in(handler: RequestHandler, result: AuthResult, next_url: str = "") -> None:
    """Store the (already approved) result, start a session, redirect."""
    hub = handler.settings["hub"]
    user = await hub.extras["logins"].apply(result)
    await start_session(handler, user)
    handler.redirect(await next_after_login(hub, result.name, next_url))


async def start_session(handler: RequestHandler, user: Any) -> None:
    from amalthea.hub.web.base import (
        LOGIN_COOKIE,
        SESSION_COOKIE,
        XSRF_COOKIE,
        BaseHandler,
    )

    if isinstance(handler, BaseHandler):
        await handler.login_user(user)
        return
    # A plugin's handler: the same cookies BaseHandler.login_user sets.
    hub = handler.settings["hub"]
    settings = hub.settings
    sid = await writer_for(hub).create(user.id, settings.cookie_max_age_days,
                                       handler.request.headers.get("User-Agent", ""))  # fmt: skip
    secure = settings.cookie_secure or handler.request.protocol == "https"
    handler.set_signed_cookie(LOGIN_COOKIE, sid, expires_days=settings.cookie_max_age_days,
                              path=settings.hub_prefix, httponly=True, samesite="Lax",
                              secure=secure)  # fmt: skip
    handler.set_cookie(SESSION_COOKIE, sid, path=settings.base_url, httponly=True,
                       samesite="Lax", secure=secure)  # fmt: skip
    handler.clear_cookie(XSRF_COOKIE, path=settings.hub_prefix)


def _refuse(handler: RequestHandler, error: AuthError, name: str, next_url: str) -> None:
    render_auth_error = getattr(handler, "render_auth_error", None)
    if render_auth_error is not None:  # plugin handlers log and render their own page
        render_auth_error(error)
        return
    log_refusal(error, "policy")
    for key, value in error.headers.items():
        handler.set_header(key, value)
    render = getattr(handler, "_render", None)
    if render is not None:  # the login page itself: same page, with the error
        render(error.status, error=error.user_message, username=name, next=next_url)
    else:
        handler.render_template(  # type: ignore[attr-defined]
            "login.html", status=error.status, error=error.user_message, username=name,
            next=next_url,
        )  # fmt: skip


# ---- second factor ---------------------------------------------------------------------------
def mfa_manager(hub: Any) -> Any:
    return getattr(hub.accounts, "mfa", None)


async def _must_enrol(hub: Any, name: str) -> bool:
    """A local account in one of ``MFAManager.mfa_required_groups`` without a second factor."""
    manager = mfa_manager(hub)
    if manager is None or not manager.mfa_required_groups:
        return False
    if await hub.accounts.get(name) is None:
        return False  # not a local account: the identity system owns its second factor
    async with hub.db.session() as s:
        user = await queries.user_by_name(s, name)
        groups = [g.name for g in user.groups] if user else []
    return bool(manager.requires_mfa(groups)) and not await manager.is_enrolled(name)


def _remember_pending(handler: RequestHandler, result: AuthResult, next_url: str) -> None:
    value = json.dumps({"name": result.name, "admin": result.admin, "next": next_url})
    handler.set_signed_cookie(
        MFA_PENDING_COOKIE, value, expires_days=MFA_PENDING_MINUTES / 1440,
        path=handler.settings["hub"].settings.hub_prefix, httponly=True, samesite="Lax",
    )  # fmt: skip


def pending_enrolment(handler: RequestHandler) -> tuple[AuthResult, str] | None:
    """(approved-but-not-yet-enrolled login, next URL) from the signed cookie, if fresh."""
    raw = handler.get_signed_cookie(MFA_PENDING_COOKIE, max_age_days=MFA_PENDING_MINUTES / 1440)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return AuthResult(name=str(data["name"]), admin=data.get("admin")), str(data["next"])
    except (ValueError, KeyError, TypeError):
        return None


def forget_pending(handler: RequestHandler) -> None:
    handler.clear_cookie(MFA_PENDING_COOKIE, path=handler.settings["hub"].settings.hub_prefix)
