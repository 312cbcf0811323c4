"""Pages of the ``local`` authenticator: sign-up, change password, approval of sign-ups.

They exist only when the configured authenticator keeps its own accounts; otherwise 404.
"""

from __future__ import annotations

from sqlalchemy import select
from tornado import web

from amalthea.auth.base import AuthError
from amalthea.auth.local import LocalAuthenticator
from amalthea.hub.store import queries
from amalthea.hub.store.models import LoginSession
from amalthea.hub.web.base import PageHandler, authenticated


class _LocalOnly(PageHandler):
    @property
    def local(self) -> LocalAuthenticator:
        auth = self.hub.authenticator
        if not isinstance(auth, LocalAuthenticator):
            raise web.HTTPError(404, reason="This hub does not keep its own accounts.")
        return auth


class SignupHandler(_LocalOnly):
    def _check(self) -> LocalAuthenticator:
        auth = self.local
        if not auth.allow_signup:
            raise web.HTTPError(404, reason="Sign-up is switched off on this hub.")
        return auth

    def get(self) -> None:
        self._check()
        self.render_template("signup.html", username="")

    async def post(self) -> None:
        self.check_anonymous_xsrf()
        auth = self._check()
        name = self.get_body_argument("username", "")[:300]
        password = self.get_body_argument("password", "")
        if password != self.get_body_argument("password2", ""):
            self.render_template("signup.html", status=400, username=name,
                                 error="The two passwords differ.")  # fmt: skip
            return
        ip = self.request.remote_ip or ""
        wait = self.hub.throttle.retry_after(f"signup:{ip}")
        if wait > 0:
            raise web.HTTPError(429, reason=f"Too many sign-ups from here; wait {int(wait) + 1} s.")
        try:
            account = await auth.signup(name, password)
        except AuthError as e:
            self.render_template(
                "signup.html", status=e.status, username=name, error=e.user_message
            )
            return
        self.hub.throttle.failed(f"signup:{ip}")  # counts sign-ups per IP, not failures
        if account.approved:
            async with self.hub.db.session() as s:
                user = await queries.get_or_create_user(s, account.username)
                await s.commit()
            await self.login_user(user)
            self.redirect(self.hub_prefix + "home")
            return
        self.render_template("signup.html", done=True, username=account.username)


class ChangePasswordHandler(_LocalOnly):
    @authenticated
    def get(self) -> None:
        self.local  # noqa: B018 - 404 unless local accounts
        self.render_template("password.html")

    @authenticated
    async def post(self) -> None:
        who = self.current_user
        assert who is not None
        new = self.get_body_argument("new_password", "")
        if new != self.get_body_argument("new_password2", ""):
            self.render_template("password.html", status=400, error="The new passwords differ.")
            return
        # the same buckets as the login form: this page must not be a side door for guessing
        keys = (f"ip:{self.request.remote_ip or ''}", f"user:{who.name.lower()}")
        wait = self.hub.throttle.retry_after(*keys)
        if wait > 0:
            self.set_header("Retry-After", str(int(wait) + 1))
            self.render_template("password.html", status=429,
                                 error=f"Too many failed attempts. Try again in {int(wait) + 1} s.")  # fmt: skip
            return
        try:
            await self.local.change_password(who.name, self.get_body_argument("password", ""), new)
        except AuthError as e:
            if e.status == 403:
                self.hub.throttle.failed(*keys)
            self.render_template("password.html", status=e.status, error=e.user_message)
            return
        self.hub.throttle.succeeded(keys[1])
        await self._end_other_sessions(who.name, who.session_id)
        self.render_template("password.html", done=True)

    async def _end_other_sessions(self, name: str, keep: str | None) -> None:
        """Whoever else holds a session (maybe the reason for the change) is logged out."""
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                return
            rows = await s.execute(select(LoginSession.id).where(
                LoginSession.user_id == user.id, LoginSession.id != (keep or "")))  # fmt: skip
            ids = list(rows.scalars())
            hashes = [h for sid in ids for h in await queries.end_session(s, sid)]
            await s.commit()
        for key in [f"session:{sid}" for sid in ids] + hashes:
            self.hub.identities.forget(key)


class ApprovalHandler(_LocalOnly):
    def _admin(self) -> None:
        who = self.current_user
        if who is None or not who.can("admin:users"):
            raise web.HTTPError(403, reason="Only administrators can approve sign-ups.")

    @authenticated
    async def get(self) -> None:
        self._admin()
        pending = await self.hub.accounts.pending()
        self.render_template("approvals.html", pending=pending)

    @authenticated
    async def post(self) -> None:
        self._admin()
        name = self.get_body_argument("username", "")
        action = self.get_body_argument("action", "")
        if name not in await self.hub.accounts.pending():
            raise web.HTTPError(404, reason=f"No sign-up waiting for approval named {name!r}.")
        if action == "approve":
            await self.hub.accounts.set_approved(name, True)
            async with self.hub.db.session() as s:
                await queries.get_or_create_user(s, name)
                await s.commit()
        elif action == "reject":
            await self.hub.accounts.delete(name)
        else:
            raise web.HTTPError(400, reason="action must be approve or reject")
        self.redirect(self.hub_prefix + "accounts")


priority = 50
handlers = [
    (r"signup", SignupHandler),
    (r"change-password", ChangePasswordHandler),
    (r"accounts", ApprovalHandler),
]
