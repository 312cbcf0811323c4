"""``/hub/set-password?code=…``: the page behind an admin's one-time password link.

Same mechanics as the first-run setup page (code checked against its hash, anonymous XSRF), but
the name is fixed by the link. The password policy is the local authenticator's; the account is
created when missing, else its password replaced (which also lifts a lockout). The code is used
up only after the policy accepted the password, so a too-short first try does not burn the link.
"""

from __future__ import annotations

from tornado import web

from amalthea.auth.base import AuthError
from amalthea.auth.local import LocalAuthenticator
from amalthea.hub import password_links
from amalthea.hub.store import queries
from amalthea.hub.web.base import PageHandler

_DEAD = ("This password link is not valid (any more). Links work once and expire after a day; "
         "ask an administrator for a new one.")  # fmt: skip


class SetPasswordHandler(PageHandler):
    async def _target(self) -> tuple[LocalAuthenticator, str, str]:
        auth = self.hub.authenticator
        code = self.get_argument("code", "")
        name = await password_links.peek(self.hub.db, code)
        if not isinstance(auth, LocalAuthenticator) or name is None:
            raise web.HTTPError(404, reason=_DEAD)
        return auth, code, name

    async def get(self) -> None:
        _auth, code, name = await self._target()
        self.render_template("set_password.html", code=code, username=name)

    async def post(self) -> None:
        self.check_anonymous_xsrf()
        auth, code, name = await self._target()
        password = self.get_body_argument("password", "")

        def again(status: int, error: str) -> None:
            self.render_template("set_password.html", status=status, code=code, username=name,
                                 error=error)  # fmt: skip

        if password != self.get_body_argument("password2", ""):
            again(400, "The two passwords differ.")
            return
        problem = auth.password_problem(name, password)
        if problem:
            again(400, problem)
            return
        if not await password_links.redeem(self.hub.db, code):
            raise web.HTTPError(404, reason=_DEAD)
        try:
            if await auth.store.get(name) is None:
                await auth.create_account(name, password, approved=True)
            else:
                await auth.set_password(name, password)
                await auth.store.set_approved(name, True)
        except AuthError as e:
            again(e.status, e.user_message)
            return
        async with self.hub.db.session() as s:
            user = await queries.get_or_create_user(s, name)
            await s.commit()
        await self.login_user(user)
        self.redirect(self.hub_prefix + "home")


priority = 15
handlers = [(r"set-password", SetPasswordHandler)]
