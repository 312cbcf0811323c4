"""``/hub/mfa/enrol``: set up a TOTP second factor for a local account.

Two ways here: a logged-in person who wants a second factor, or a person who just passed the
password check but belongs to one of ``MFAManager.mfa_required_groups`` and has none yet (they
carry the short-lived signed cookie from ``login_flow``, and get a session only after enrolling).

GET shows the ``otpauth://`` URI (and the secret to type in) of the enrolment in progress, the
same one on reload; POST checks a first code, switches the factor on, and shows the recovery
codes once. Logging in afterwards takes the password and a code (or a recovery code).
"""

from __future__ import annotations

from tornado import web

from amalthea.auth.base import AuthResult
from amalthea.auth.mfa import MFAError
from amalthea.hub.web.base import PageHandler
from amalthea.hub.web.login_flow import (
    forget_pending,
    mfa_manager,
    next_after_login,
    pending_enrolment,
    start_session,
)


class EnrolHandler(PageHandler):
    def _manager(self) -> object:
        manager = mfa_manager(self.hub)
        if manager is None:
            raise web.HTTPError(
                404, reason="Second factors are not available on this hub (the administrator has "
                "not set AMALTHEA_CRYPT_KEY, which keeps TOTP secrets encrypted).",
            )  # fmt: skip
        return manager

    def _who(self) -> tuple[str, AuthResult | None, str] | None:
        """(username, pending login or None, next URL)."""
        if self.current_user is not None and self.current_user.kind == "user":
            return self.current_user.name, None, self.get_argument("next", "")
        pending = pending_enrolment(self)
        if pending is None:
            return None
        return pending[0].name, pending[0], pending[1]

    async def _render_enrol(self, name: str, required: bool, status: int = 200,
                            error: str = "") -> None:  # fmt: skip
        manager = self._manager()
        enrolment = await manager.pending_enrolment(name) or await manager.enrol(name)  # type: ignore[attr-defined]
        self.render_template("mfa_enrol.html", status=status, uri=enrolment.uri,
                             secret=enrolment.secret, required=required, error=error,
                             next=self.get_argument("next", ""))  # fmt: skip

    async def get(self) -> None:
        manager = self._manager()
        who = self._who()
        if who is None:
            self.login_redirect()
            return
        name, pending, _next = who
        if await self.hub.accounts.get(name) is None:
            raise web.HTTPError(404, reason="Second factors are set up by your identity provider, "
                                "not by this hub.")  # fmt: skip
        if await manager.is_enrolled(name):  # type: ignore[attr-defined]
            self.render_template("mfa_enrol.html", enrolled=True, required=False)
            return
        await self._render_enrol(name, required=pending is not None)

    async def post(self) -> None:
        manager = self._manager()
        if self.current_user is None:
            self.check_anonymous_xsrf()  # logged-in people were checked in prepare()
        who = self._who()
        if who is None:
            raise web.HTTPError(403, reason="Your sign-in took too long. Log in again.")
        name, pending, nxt = who
        try:
            codes = await manager.confirm(name, self.get_body_argument("code", ""))  # type: ignore[attr-defined]
        except MFAError as e:
            raise web.HTTPError(409, reason=str(e)) from None
        if codes is None:
            await self._render_enrol(name, pending is not None, 400,
                                     "That code is wrong or expired. Enter the current code "
                                     "from your authenticator app.")  # fmt: skip
            return
        if pending is not None:
            forget_pending(self)
            user = await self.hub.extras["logins"].apply(pending)
            await start_session(self, user)
        self.render_template("mfa_codes.html", codes=codes,
                             continue_url=await next_after_login(self.hub, name, nxt))  # fmt: skip


priority = 60
handlers = [(r"mfa/enrol", EnrolHandler)]
