"""The three pages of the browser login: start OAuth, finish OAuth, log out.

``login`` is where jupyter_server sends unauthenticated browsers (``?next=`` the page they
wanted); it remembers the page and redirects to the hub's authorize endpoint. The hub
redirects back to ``oauth_callback`` with a code, which we trade for a token, check, store in
our cookie, then return the browser to the page. ``logout`` forgets the token here and
continues to the hub's logout, which ends the hub session (and with it the token).
"""

from __future__ import annotations

from typing import cast

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from .hubclient import HubRejected, HubUnavailable, OAuthExchangeError
from .identity import HubContext, HubIdentityProvider, HubUser
from .oauth import STATE_TTL, OAuthStateError, authorize_url, safe_next_url

__all__ = ["HubLogoutHandler", "OAuthCallbackHandler", "OAuthLoginHandler"]


class _HubHandler(JupyterHandler):
    @property
    def hub_identity(self) -> HubIdentityProvider:
        return cast(HubIdentityProvider, self.identity_provider)

    @property
    def hub(self) -> HubContext:
        return self.hub_identity.hub

    def state_cookie_name(self, suffix: str) -> str:
        return f"{self.hub.env.cookie_name}-oauth-state-{suffix}"


class OAuthLoginHandler(_HubHandler):
    """Start the authorization-code flow: remember where to return, go to the hub."""

    @allow_unauthenticated
    def get(self) -> None:
        env = self.hub.env
        next_url = safe_next_url(self.get_argument("next", None), env.service_prefix)
        state, login = self.hub.states.begin(next_url)
        self.set_secure_cookie(
            self.state_cookie_name(login.cookie_suffix),
            state,
            expires_days=None,
            max_age=int(STATE_TTL),
            **self.hub_identity.cookie_options_for(self),
        )
        self.redirect(
            authorize_url(
                hub_host=env.hub_host,
                hub_prefix=env.hub_prefix,
                client_id=env.client_id,
                redirect_uri=env.oauth_callback_url,
                state=state,
                challenge=login.challenge,
            )
        )


class OAuthCallbackHandler(_HubHandler):
    """Finish the flow: check state, exchange the code, check access, set our cookie."""

    @allow_unauthenticated
    async def get(self) -> None:
        error = self.get_argument("error", None)
        if error:
            detail = self.get_argument("error_description", "")
            raise web.HTTPError(400, f"The hub refused the login: {error} {detail}".strip())
        state = self.get_argument("state", None)
        code = self.get_argument("code", None)
        if not code:
            raise web.HTTPError(400, "OAuth callback without a code parameter")
        try:
            pending = self.hub.states.peek(state)
            cookie_name = self.state_cookie_name(pending.cookie_suffix)
            raw = self.get_secure_cookie(cookie_name, max_age_days=STATE_TTL / 86400)
            login = self.hub.states.finish(state, raw.decode() if raw else None)
        except OAuthStateError as exc:
            raise web.HTTPError(exc.status, str(exc)) from exc
        self.clear_cookie(cookie_name, path=self.hub.env.cookie_path)
        token = await self._exchange(code, login.verifier)
        model = await self.hub_identity.identify(self, token)
        if model is None:
            raise web.HTTPError(403, "The hub did not accept the token it just issued")
        await self.hub_identity.check_access(model)
        self.hub_identity.set_token_cookie(self, token)
        self.log.info("Logged in %s via the hub", HubUser.from_model(model).username)
        self.redirect(login.next_url)

    async def _exchange(self, code: str, verifier: str) -> str:
        env = self.hub.env
        try:
            return await self.hub.client.exchange_code(
                client_id=env.client_id,
                code=code,
                redirect_uri=env.oauth_callback_url,
                code_verifier=verifier,
            )
        except OAuthExchangeError as exc:
            raise web.HTTPError(403, f"{exc}; reload the page to log in again") from exc
        except HubUnavailable as exc:
            raise web.HTTPError(502, f"The hub is not reachable: {exc}") from exc
        except HubRejected as exc:
            raise web.HTTPError(500, str(exc)) from exc


class HubLogoutHandler(_HubHandler):
    """Forget our token and continue to the hub's logout page."""

    @allow_unauthenticated
    def get(self) -> None:
        token, source = self.hub_identity.find_token(self)
        if token and source == "cookie":
            self.hub.identities.forget_token(token)
        self.hub_identity.clear_login_cookie(self)
        self.redirect(f"{self.hub.env.hub_host}{self.hub.env.hub_prefix}logout")
