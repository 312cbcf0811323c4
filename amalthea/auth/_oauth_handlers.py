"""Tornado handlers for the OAuth2/OIDC redirect login (mounted under the hub prefix).

``/oauth_login``: make state/nonce/PKCE verifier, seal them in a cookie, redirect to the IdP.
``/oauth_callback``: check the cookie against ``state``, exchange the code, hand the AuthResult
to the hub through ``context.complete_login``. Every failure is a clear page, never a 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amalthea.auth._handlers import AuthPageHandler
from amalthea.auth._pending import cookie_name, new_pending
from amalthea.auth.base import AuthError

if TYPE_CHECKING:
    from amalthea.auth.oidc import OIDCAuthenticator

EXPIRED_LOGIN = (
    "Your sign-in could not be matched to this browser: it took longer than allowed, was started "
    "in another browser, or cookies are blocked. Please start again."
)


class OAuthLoginHandler(AuthPageHandler):
    authenticator: OIDCAuthenticator

    async def get(self) -> None:
        auth = self.authenticator
        redirect_uri = auth.callback_url or (
            self.hub_base_url() + self.hub_prefix + "oauth_callback"
        )
        pending = new_pending(
            next_url=self.get_argument("next", ""), redirect_uri=redirect_uri, pkce=auth.use_pkce
        )
        try:
            url = await auth.authorization_url(pending)
        except AuthError as e:
            self.render_auth_error(e)
            return
        self.set_cookie(
            cookie_name(pending.state),
            auth.sealer.seal(pending),
            path=self.hub_prefix,
            httponly=True,
            secure=self.request.protocol == "https",
            samesite="Lax",
            expires_days=None,
        )
        self.set_header("Cache-Control", "no-store")
        self.redirect(url)


class OAuthCallbackHandler(AuthPageHandler):
    authenticator: OIDCAuthenticator

    async def get(self) -> None:
        retry = self.hub_prefix + "oauth_login"
        try:
            await self._callback()
        except AuthError as e:
            self.render_auth_error(e, retry=retry)
        except Exception as e:
            # A bug or an IdP answering nonsense must still give the person a page, not a 500.
            self.authenticator.log.exception("unexpected error in the OAuth callback")
            self.render_auth_error(
                AuthError(
                    "Sign-in failed because of an unexpected error. Please try again.",
                    log_message=f"unexpected {e!r}",
                    status=502,
                ),
                retry=retry,
            )

    async def _callback(self) -> None:
        auth = self.authenticator
        state = self.get_argument("state", "")
        if not state:
            raise AuthError(EXPIRED_LOGIN, log_message="callback without state", status=400)
        name = cookie_name(state)
        cookie = self.get_cookie(name)
        self.clear_cookie(name, path=self.hub_prefix)
        pending = auth.sealer.unseal(cookie, state) if cookie else None
        if pending is None:
            raise AuthError(
                EXPIRED_LOGIN,
                log_message="callback state does not match a valid login cookie "
                f"({'no cookie' if not cookie else 'forged, expired or foreign cookie'})",
                status=400,
            )
        error = self.get_argument("error", "")
        if error:
            description = self.get_argument("error_description", "") or error
            raise AuthError(
                f"The identity provider did not sign you in: {description}",
                log_message=f"IdP returned error={error!r} description={description!r}",
                status=403,
            )
        code = self.get_argument("code", "")
        if not code:
            raise AuthError(EXPIRED_LOGIN, log_message="callback without code", status=400)
        result = await auth.exchange_code(code, pending)
        await self.finish_login(result, pending.next_url)
