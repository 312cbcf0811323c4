"""``dummy``: anyone may log in with any name (and, if set, one shared password).

For development and tests only; the hub logs a warning at startup when it is in use.
"""

from __future__ import annotations

import hmac

from traitlets import Unicode, default

from amalthea.auth.base import Authenticator, AuthResult, LoginRequest

__all__ = ["DummyAuthenticator"]


class DummyAuthenticator(Authenticator):
    password = Unicode(
        "", help="If set, everyone must type this password; any name is accepted."
    ).tag(config=True)

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        return True

    async def startup(self) -> None:
        self.log.warning(
            "The dummy authenticator lets anyone log in%s. Do not use it on a shared machine.",
            " with the shared password" if self.password else " with any name and password",
        )

    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        name = request.form.get("username", "")
        if not name:
            return None
        if self.password and not hmac.compare_digest(
            self.password.encode(), request.form.get("password", "").encode()
        ):
            return None
        return AuthResult(name=name)
