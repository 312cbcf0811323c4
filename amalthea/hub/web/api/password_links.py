"""``POST /users/NAME/password-link``: a one-time link to set a local account's password.

Answers ``{"url": ..., "expires_at": ...}`` (201). Needs ``admin:users`` for the user; a link for
an admin needs an admin (else holders of ``admin:users`` could take over admin accounts).
Behaviour lives in ``amalthea.hub.password_links``; the page is ``pages/password_link.py``.
"""

from __future__ import annotations

from amalthea.auth.local import LocalAuthenticator
from amalthea.hub import password_links
from amalthea.hub.clock import isoformat
from amalthea.hub.store import queries
from amalthea.hub.web.api._support import RestHandler, bad


class PasswordLinkHandler(RestHandler):
    async def post(self, name: str) -> None:
        who = await self.need_any(["admin:users"], user=name)
        self.body_object(set())
        if not isinstance(self.hub.authenticator, LocalAuthenticator):
            raise bad("Password links exist only with the local authenticator "
                      "(c.Amalthea.authenticator_class = 'local'); this hub's "
                      "authenticator keeps the passwords elsewhere.", 400)  # fmt: skip
        async with self.hub.db.session() as s:
            user = await queries.user_by_name(s, name)
            if user is None:
                raise bad(f"No such user {name[:80]}", 404)
            user_id, target_admin = user.id, user.admin
        if target_admin and not who.admin:
            raise bad("Only admins can make password links for admins", 403)
        issued = await password_links.issue(self.hub.db, user_id)
        origin = self.hub.settings.public_url.rstrip("/") or (
            f"{self.request.protocol}://{self.request.host}"
        )
        self.write_json(
            {
                "url": f"{origin}{self.hub_prefix}set-password?code={issued.code}",
                "expires_at": isoformat(issued.expires_at),
            },
            201,
        )


handlers = [(r"/users/([^/]+)/password-link", PasswordLinkHandler)]
