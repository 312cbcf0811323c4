"""``/hub/login`` and ``/hub/logout`` (protocol §11.2, §11.3)."""

from __future__ import annotations

from typing import Any

from tornado import web

from amalthea.auth.base import AuthError, AuthResult, LoginRequest
from amalthea.hub.security.ratelimit import login_keys
from amalthea.hub.store import queries
from amalthea.hub.web.base import LOGIN_COOKIE, SESSION_COOKIE, XSRF_COOKIE, PageHandler
from amalthea.hub.web.login_flow import complete_login, log_refusal, next_after_login


async def finish_login(handler: PageHandler, result: AuthResult, next_url: str = "") -> None:
    """Policy, second factor, store user/groups/auth_state, session, redirect: see
    amalthea/hub/web/login_flow.py (shared with redirect authenticators' handlers)."""
    await complete_login(handler, result, next_url)


async def default_next(handler: PageHandler, name: str, next_url: str = "") -> str:
    return await next_after_login(handler.hub, name, next_url)


class LoginHandler(PageHandler):
    def _render(self, status: int = 200, **ctx: Any) -> None:
        auth = self.hub.authenticator
        ctx.setdefault("next", self.get_argument("next", ""))
        ctx.setdefault("username", "")
        self.render_template(
            "login.html", status=status, login_kind=auth.login_kind, auth_name=auth.display_name,
            login_url=auth.login_url(self.hub_prefix) or "",
            # header authenticators with a password form (kerberos) show it when SSO fails
            password_fallback=bool(getattr(auth, "allow_password", False)),
            allow_signup=getattr(auth, "allow_signup", False), setup_pending=bool(
                self.hub.setup_code_hash), **ctx,
        )  # fmt: skip

    async def get(self) -> None:
        if self.current_user is not None:
            self.redirect(await default_next(self, self.current_user.name,
                                             self.get_argument("next", "")))  # fmt: skip
            return
        auth = self.hub.authenticator
        if auth.login_kind == "header":
            await self._header_login()
            return
        self._render()

    async def _header_login(self) -> None:
        req = LoginRequest(
            headers=dict(self.request.headers), remote_ip=self.request.remote_ip or ""
        )
        try:
            result = await self.hub.authenticator.authenticate(req)
        except AuthError as e:
            # the page (status, challenge headers such as WWW-Authenticate: Negotiate, and the
            # password form when the authenticator has one) instead of a bare error
            log_refusal(e, "header login")
            for k, v in e.headers.items():
                self.set_header(k, v)
            self._render(e.status, error=e.user_message)
            return
        if result is None:
            raise web.HTTPError(403, reason="Your identity was not accepted by this hub.")
        await finish_login(self, result, self.get_argument("next", ""))

    async def post(self) -> None:
        self.check_anonymous_xsrf()
        form = {k: self.get_body_argument(k, "") for k in self.request.body_arguments}
        username = form.get("username", "")[:300]
        nxt = self.get_argument("next", "")
        ip = self.request.remote_ip or ""
        keys = login_keys(ip, username)
        wait = self.hub.throttle.retry_after(*keys)
        if wait > 0:
            self.set_header("Retry-After", str(int(wait) + 1))
            self._render(429, error=f"Too many failed logins. Try again in {int(wait) + 1} s.",
                         username=username, next=nxt)  # fmt: skip
            return
        request = LoginRequest(form=form, headers=dict(self.request.headers), remote_ip=ip,
                               query={k: self.get_query_argument(k) for k in self.request.query_arguments})  # fmt: skip
        try:
            result = await self.hub.authenticator.login(request)
        except AuthError as e:
            log_refusal(e, "form login")
            if e.status != 400:
                self.hub.throttle.failed(*keys)
            for k, v in e.headers.items():
                self.set_header(k, v)
            self._render(e.status, error=e.user_message, username=username, next=nxt)
            return
        if result is None:
            self.hub.throttle.failed(*keys)
            self._render(403, error="Invalid username or password.", username=username, next=nxt)
            return
        self.hub.throttle.succeeded(keys[1])
        await finish_login(self, result, nxt)


class LogoutHandler(PageHandler):
    async def get(self) -> None:
        who = self.current_user
        if who is not None and who.session_id:
            if self.hub.settings.shutdown_on_logout:
                for rt in list(self.hub.servers.runtimes.values()):
                    if rt.username == who.name and rt.state.active:
                        await self.hub.servers.stop(rt.username, rt.name)
            async with self.hub.db.session() as s:
                hashes = await queries.end_session(s, who.session_id)
                await s.commit()
            self.hub.identities.forget("session:" + who.session_id)
            for h in hashes:
                self.hub.identities.forget(h)
        self.clear_cookie(LOGIN_COOKIE, path=self.hub_prefix)
        self.clear_cookie(SESSION_COOKIE, path=self.base_url)
        self.clear_cookie(XSRF_COOKIE, path=self.hub_prefix)
        self.clear_cookie("jupyterhub-services", path=self.base_url + "services")
        target = self.hub.authenticator.logout_url(self.hub_prefix)
        self.redirect(target or self.hub_prefix + "login")


priority = 10
handlers = [(r"login", LoginHandler), (r"logout", LogoutHandler)]
