"""Request handling shared by API and pages: identity, XSRF, errors, templates, cookies.

Identity (protocol §3.1): API handlers (``accepts_token = True``) take ``Authorization:
token|bearer <t>``; every handler takes the signed login cookie. ``self.current_user`` is an
:class:`~amalthea.hub.security.identity.Identity` or None.

XSRF (§3.3): cookie-authenticated requests other than top-level GET navigations must carry the
token (form/query ``_xsrf`` or header ``X-XSRFToken``/``X-CSRFToken``); token-authenticated
requests are exempt. Anonymous forms (login, sign-up) use a double-submit cookie.

Errors: raise ``tornado.web.HTTPError(status, reason=...)`` or return early; API handlers answer
``{"status", "message"}``, pages render ``error.html`` (5xx pages show the request id, which
is also in the log line, so a user's report can be matched to the traceback).
"""

from __future__ import annotations

import functools
import http.cookies
import json
import logging
import random
import re
from http.client import responses
from typing import Any
from urllib.parse import quote, urlencode

from tornado import web
from tornado.escape import native_str

from amalthea import JUPYTERHUB_COMPAT_VERSION
from amalthea.hub import rbac
from amalthea.hub.context import HubContext
from amalthea.hub.security import csrf
from amalthea.hub.security.identity import Identity
from amalthea.hub.security.redact import redact_uri
from amalthea.hub.security.redirects import safe_next
from amalthea.hub.store.session_writer import writer_for
from amalthea.hub.web import cookies, json_out

__all__ = ["APIHandler", "BaseHandler", "PageHandler", "authenticated"]

log = logging.getLogger("amalthea.web")

LOGIN_COOKIE = "jupyterhub-hub-login"
SESSION_COOKIE = "jupyterhub-session-id"
XSRF_COOKIE = "_xsrf"
_AUTH_HEADER = re.compile(r"^(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


_random = random.Random()


@functools.lru_cache(maxsize=8)
def _api_csp(hub_prefix: str) -> str:
    return f"frame-ancestors 'none'; report-uri {hub_prefix}security/csp-report; default-src 'none'"


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259); Python accepts them unless told otherwise."""
    raise ValueError(f"{name} is not valid JSON")


class BaseHandler(web.RequestHandler):
    accepts_token = False
    is_api = False
    current_user: Identity | None

    @property
    def hub(self) -> HubContext:
        return self.settings["hub"]  # type: ignore[no-any-return]

    @property
    def hub_prefix(self) -> str:
        return self.hub.settings.hub_prefix

    @property
    def base_url(self) -> str:
        return self.hub.settings.base_url

    def set_default_headers(self) -> None:
        # an id to match a user's report with the log, not a secret: no urandom() per request
        self.request_id = f"{_random.getrandbits(48):012x}"
        self.set_header("X-JupyterHub-Version", JUPYTERHUB_COMPAT_VERSION)
        self.set_header("X-Request-Id", self.request_id)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    def check_xsrf_cookie(self) -> None:
        """Tornado's own check is replaced by :meth:`_check_xsrf` (scoped as in §3.3)."""

    # ---- identity ----------------------------------------------------------------------
    async def prepare(self) -> None:
        self.auth_via: str | None = None
        self.current_user = None
        if self.accepts_token:
            header = self.request.headers.get("Authorization", "")
            m = _AUTH_HEADER.match(header)
            if m:
                ident = await self.hub.identities.from_token(m.group(1))
                if ident is not None:
                    self.current_user, self.auth_via = ident, "token"
                    self.hub.identities.touch(ident)
                return
        sid = self._session_id()
        if sid:
            ident = await self.hub.identities.from_session(sid)
            if ident is not None:
                self.current_user, self.auth_via = ident, "cookie"
                self.hub.identities.touch(ident)
            else:
                self._clear_login_cookies()
        if self.current_user is not None and not self._xsrf_exempt():
            if self.is_api and not self._json_or_no_body():
                # a cross-site HTML form cannot forge a JSON API call: treat as anonymous
                self.current_user = None
            elif not csrf.tokens_match(self.xsrf, self._given_xsrf()):
                self._xsrf_failed()

    def _session_id(self) -> str | None:
        raw = self.get_signed_cookie(
            LOGIN_COOKIE, max_age_days=self.hub.settings.cookie_max_age_days, min_version=2
        )
        return raw.decode() if raw else None

    def _xsrf_exempt(self) -> bool:
        if self.auth_via == "token":
            return True
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            mode = self.request.headers.get("Sec-Fetch-Mode", "navigate")
            return (
                not self.is_api
                or mode in ("navigate", "no-cors")
                or "_xsrf" in self.request.arguments
            )
        return False

    def _json_or_no_body(self) -> bool:
        ctype = self.request.headers.get("Content-Type", "")
        return not ctype or ctype.split(";")[0].strip() == "application/json"

    def _given_xsrf(self) -> str | None:
        return (
            self.get_argument("_xsrf", None)
            or self.request.headers.get("X-XSRFToken")
            or self.request.headers.get("X-CSRFToken")
        )

    def _xsrf_failed(self) -> None:
        raise web.HTTPError(
            403,
            reason="'_xsrf' argument missing or wrong: the form was forged or has expired. "
            "Reload the page and try again.",
        )

    @property
    def xsrf(self) -> str:
        """The XSRF token for forms and API calls made by this browser."""
        if (
            self.current_user is not None
            and self.current_user.session_id
            and self.auth_via == "cookie"
        ):
            return csrf.session_token(self.hub.cookie_secret, self.current_user.session_id)
        if not hasattr(self, "_anon_xsrf"):
            cookie = self.get_cookie(XSRF_COOKIE)
            if cookie and len(cookie) == 40 and cookie.isalnum():
                self._anon_xsrf = cookie
            else:
                self._anon_xsrf = csrf.anonymous_token()
                self.set_cookie(XSRF_COOKIE, self._anon_xsrf, path=self.hub_prefix,
                                httponly=True, samesite="Lax", expires_days=1 / 24)  # fmt: skip
        return self._anon_xsrf

    def check_anonymous_xsrf(self) -> None:
        """For forms posted without a session (login, sign-up, setup)."""
        cookie = self.get_cookie(XSRF_COOKIE)
        given = self._given_xsrf()
        if self.auth_via == "cookie" and self.current_user is not None:
            return  # already checked in prepare()
        if not cookie or not csrf.tokens_match(cookie, given):
            self._xsrf_failed()

    # ---- cookies -----------------------------------------------------------------------
    def set_cookie(
        self,
        name: str,
        value: str | bytes,
        domain: str | None = None,
        expires: Any = None,
        path: str = "/",
        expires_days: float | None = None,
        *,
        max_age: int | None = None,
        httponly: bool = False,
        secure: bool = False,
        samesite: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Tornado's set_cookie, with the header text built directly (web/cookies.py)."""
        by_tornado = bool(domain or max_age or kwargs)
        when = None
        if not by_tornado:
            try:
                when = cookies.when_of(expires, expires_days)
            except TypeError:  # an expiry only Tornado reads (a time tuple)
                by_tornado = True
        if by_tornado:
            super().set_cookie(name, value, domain, expires, path, expires_days,
                               max_age=max_age, httponly=httponly, secure=secure,
                               samesite=samesite, **kwargs)  # fmt: skip
            return
        name, value = native_str(name), native_str(value)
        coded, text = cookies.cookie_header(
            name, value, path=path, expires=when, httponly=httponly, secure=secure,
            samesite=samesite,
        )  # fmt: skip
        jar = getattr(self, "_new_cookie", None)
        if jar is None:
            jar = self._new_cookie = http.cookies.SimpleCookie()
        if name in jar:
            del jar[name]
        dict.__setitem__(jar, name, cookies.PrebuiltMorsel(name, value, coded, text))

    # ---- login cookies -----------------------------------------------------------------
    async def login_user(self, user: Any) -> None:
        days = self.hub.settings.cookie_max_age_days
        # committed before the cookie is sent (store/session_writer.py batches the commits)
        sid = await writer_for(self.hub).create(
            user.id, days, self.request.headers.get("User-Agent", "")
        )
        secure = self.hub.settings.cookie_secure or self.request.protocol == "https"
        self.set_signed_cookie(LOGIN_COOKIE, sid, expires_days=days, path=self.hub_prefix,
                               httponly=True, samesite="Lax", secure=secure)  # fmt: skip
        self.set_cookie(SESSION_COOKIE, sid, path=self.base_url, httponly=True,
                        samesite="Lax", secure=secure)  # fmt: skip
        self.clear_cookie(XSRF_COOKIE, path=self.hub_prefix)

    def _clear_login_cookies(self) -> None:
        self.clear_cookie(LOGIN_COOKIE, path=self.hub_prefix)
        self.clear_cookie(SESSION_COOKIE, path=self.base_url)

    # ---- urls --------------------------------------------------------------------------
    def next_url(self, default: str | None = None) -> str:
        nxt = safe_next(self.get_argument("next", None), self.base_url)
        return nxt or default or self.hub_prefix

    def login_redirect(self) -> None:
        url = self.hub_prefix + "login?" + urlencode({"next": self.request.uri or "/"})
        self.redirect(url)

    def user_url(self, name: str, server: str = "") -> str:
        url = f"{self.base_url}user/{quote(name, safe='@~')}/"
        return url + (f"{quote(server, safe='@~')}/" if server else "")

    # ---- output ------------------------------------------------------------------------
    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json_out.dumps(data))

    def render_template(self, name: str, status: int = 200, **ctx: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.render_string_template(name, **ctx))

    def render_string_template(self, name: str, **ctx: Any) -> str:
        tpl = self.hub.templates.get_template(name)
        user = self.current_user
        return tpl.render(
            user=user, hub_prefix=self.hub_prefix, base_url=self.base_url, xsrf=self.xsrf,
            static=lambda p: f"{self.hub_prefix}static/{p}?v={self.hub.version}",
            version=self.hub.version, request_id=self.request_id,
            is_admin=bool(user and user.can("admin-ui")),
            local_accounts=hasattr(self.hub.authenticator, "change_password"), **ctx,
        )  # fmt: skip

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = None
        if isinstance(exc, web.HTTPError):
            message = exc.reason or exc.log_message
        if status_code >= 500 and isinstance(exc, web.HTTPError):  # raised on purpose: no stack
            log.warning("request %s: %d %s (%s %s)", self.request_id, status_code, message,
                        self.request.method, redact_uri(self.request.uri or ""))  # fmt: skip
        elif status_code >= 500:
            log.error("request %s failed (%s %s)", self.request_id, self.request.method,
                      redact_uri(self.request.uri or ""), exc_info=kwargs.get("exc_info"))  # fmt: skip
            message = None
        self.clear_header("Content-Type")
        if isinstance(exc, web.HTTPError) and exc.status_code in (401, 403, 404, 405, 429, 400):
            pass
        if self.is_api or self._wants_json():
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "message": message}))
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            self.render_string_template(
                "error.html",
                status_code=status_code,
                status_message=responses.get(status_code, "Error"),
                message=message,
            )
        )

    def _wants_json(self) -> bool:
        accept = self.request.headers.get("Accept", "")
        return accept.startswith("application/json")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # write_error logs every error it renders, once and with the request id (tornado's own
        # "Uncaught exception" line would be a second copy); only a failure after the response
        # was sent gets no error page, so only that one is logged here
        if not (self._finished or self._headers_written):
            return
        if isinstance(value, web.HTTPError) and value.status_code < 500:
            return
        log.error("request %s failed after the response started (%s %s)", self.request_id,
                  self.request.method, redact_uri(self.request.uri or ""),
                  exc_info=(typ, value, tb))  # fmt: skip


class APIHandler(BaseHandler):
    """Base for /hub/api handlers: JSON in and out, token or cookie+XSRF."""

    accepts_token = True
    is_api = True

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json")
        self.set_header("Content-Security-Policy", _api_csp(self.hub_prefix))
        self.set_header("Access-Control-Allow-Headers", "accept, content-type, authorization")

    def options(self, *args: Any) -> None:
        self.finish()

    def get_json_body(self) -> Any:
        if not self.request.body:
            return None
        try:
            body = json.loads(self.request.body, parse_constant=_reject_constant)
            # lone surrogates (a \ud800 escape) parse fine but fail later when stored or logged
            json.dumps(body, ensure_ascii=False).encode()
        except (ValueError, RecursionError):  # UnicodeError is a ValueError
            raise web.HTTPError(400, reason="Invalid JSON in body of request") from None
        return body

    def need(self, scopes: str | tuple[str, ...], **resource: Any) -> Identity:
        """Require any of ``scopes`` on ``resource``: 403 if missing, 404 if held only for
        other resources (so a caller cannot tell "exists but not yours" from "absent")."""
        who = self.current_user
        if who is None:
            raise web.HTTPError(403, reason="Missing or invalid credentials.")
        wanted = (scopes,) if isinstance(scopes, str) else scopes
        if any(who.can(scope, **resource) for scope in wanted):
            return who
        if resource and any(rbac.any_filter(who.scopes, scope) for scope in wanted):
            raise web.HTTPError(404, reason="No access to resources or resources not found")
        raise web.HTTPError(
            403,
            reason=f"Action is not authorized with current scopes; requires any of [{wanted[0]}]",
        )


class PageHandler(BaseHandler):
    """Base for HTML pages."""


def authenticated(method: Any) -> Any:
    """Pages: anonymous visitors are sent to the login page with ``next``."""

    def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> Any:
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD"):
                self.login_redirect()
                return None
            raise web.HTTPError(403, reason="Log in first.")
        return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper
