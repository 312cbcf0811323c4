"""OAuth2 endpoints: ``/hub/api/oauth2/authorize`` (browser) and ``/hub/api/oauth2/token``.

Authorize is a cookie-authenticated page: anonymous browsers go to the login page and come back;
errors render as HTML and never redirect to an unchecked URI. Token is called server-to-server
with a form body and answers RFC 6749 JSON errors.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tornado import web

from amalthea.hub.oauth import OAuthError
from amalthea.hub.oauth.provider import AuthorizeRequest
from amalthea.hub.web.base import APIHandler, BaseHandler

_AUTHORIZE_ARGS = ("client_id", "redirect_uri", "response_type", "state", "scope",
                   "code_challenge", "code_challenge_method")  # fmt: skip


class AuthorizeHandler(BaseHandler):
    def _args(self) -> dict[str, str]:
        return {k: self.get_argument(k, "") for k in _AUTHORIZE_ARGS}

    async def _check(self) -> AuthorizeRequest | None:
        if self.current_user is None:
            self.login_redirect()
            return None
        try:
            return await self.hub.oauth.check_authorize(self.current_user, self._args())
        except OAuthError as e:
            raise web.HTTPError(e.status, reason=e.message) from None

    async def get(self) -> None:
        req = await self._check()
        if req is None:
            return
        if req.needs_confirmation:
            self.render_template(
                "oauth_confirm.html", client=req.client, scopes=req.scopes, args=self._args()
            )
            return
        await self._grant(req)

    async def post(self) -> None:
        req = await self._check()
        if req is not None:
            await self._grant(req)

    async def _grant(self, req: AuthorizeRequest) -> None:
        assert self.current_user is not None
        code = await self.hub.oauth.issue_code(self.current_user, req)
        params: dict[str, Any] = {"code": code}
        if req.state:
            params["state"] = req.state
        sep = "&" if "?" in req.redirect_uri else "?"
        self.redirect(req.redirect_uri + sep + urlencode(params))


class TokenHandler(APIHandler):
    async def prepare(self) -> None:
        pass  # the client authenticates with its secret in the form, not as a user

    async def post(self) -> None:
        form = {k: self.get_body_argument(k, "") for k in (
            "grant_type", "code", "redirect_uri", "client_id", "client_secret", "code_verifier")}  # fmt: skip
        if not form["client_id"] and self.request.headers.get("Authorization", "").startswith(
            "Basic "
        ):
            form["client_id"], form["client_secret"] = _basic(self.request.headers["Authorization"])
        try:
            body = await self.hub.oauth.exchange(form)
        except OAuthError as e:
            self.set_header("Cache-Control", "no-store")
            self.write_json(e.json_body, e.status)
            return
        self.set_header("Cache-Control", "no-store")
        self.write_json(body)


def _basic(header: str) -> tuple[str, str]:
    import base64
    from urllib.parse import unquote

    try:
        raw = base64.b64decode(header.split(None, 1)[1]).decode()
    except (ValueError, IndexError):
        return "", ""
    cid, _, secret = raw.partition(":")
    return unquote(cid), unquote(secret)


priority = 10
handlers = [
    (r"/oauth2/authorize", AuthorizeHandler),
    (r"/oauth2/token", TokenHandler),
]
