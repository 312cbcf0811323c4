"""First-run setup: a one-time link printed at startup lets the first person become admin.

Only while no user exists and the authenticator keeps its own accounts (``local``). The code in
the link is compared with its hash; it dies after use and on restart a new one is printed.
"""

from __future__ import annotations

import hmac

from tornado import web

from amalthea.auth.base import AuthError
from amalthea.hub.security.tokens import hash_token
from amalthea.hub.store import queries
from amalthea.hub.web.base import PageHandler


class SetupHandler(PageHandler):
    def _check_code(self) -> str:
        code = self.get_argument("code", "")
        expected = self.hub.setup_code_hash
        if not expected or not hmac.compare_digest(hash_token(code), expected):
            raise web.HTTPError(
                404, reason="This setup link is not valid (any more). Setup links work once and "
                "only until the first admin exists; restart the hub for a new one.",
            )  # fmt: skip
        return code

    def get(self) -> None:
        code = self._check_code()
        self.render_template("setup.html", code=code, username="admin")

    async def post(self) -> None:
        self.check_anonymous_xsrf()
        code = self._check_code()
        name = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        if password != self.get_body_argument("password2", ""):
            self.render_template("setup.html", status=400, code=code, username=name,
                                 error="The two passwords differ.")  # fmt: skip
            return
        auth = self.hub.authenticator
        try:
            account = await auth.create_account(name, password, approved=True)  # type: ignore[attr-defined]
        except AuthError as e:
            self.render_template("setup.html", status=e.status, code=code, username=name,
                                 error=e.user_message)  # fmt: skip
            return
        self.hub.setup_code_hash = None
        async with self.hub.db.session() as s:
            user = await queries.get_or_create_user(s, account.username, admin=True)
            await s.commit()
        await self.login_user(user)
        self.redirect(self.hub_prefix + "home")


priority = 15
handlers = [(r"setup", SetupHandler)]
