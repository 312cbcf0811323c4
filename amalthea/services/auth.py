"""Write a hub service in a few lines: users log in through the hub (OAuth), as with JupyterHub's
``HubOAuth``. Works under Amalthea and under JupyterHub (it speaks the public protocol only).

    from amalthea.services.auth import HubOAuth, authenticated, service_app

    class WhoAmI(HubOAuth.Handler):
        @authenticated
        def get(self):
            self.write({"name": self.current_user["name"]})

    service_app([("", WhoAmI)]).listen_from_env()

Configuration comes from the ``JUPYTERHUB_*`` environment the hub gives a managed service
(protocol §10.2). The flow: no cookie → redirect to ``/hub/api/oauth2/authorize`` (PKCE S256,
state in a signed cookie) → ``oauth_callback`` exchanges the code for a token → the token is
kept in a signed cookie named after the client id → every request is identified with
``GET /hub/api/user`` (cached ``cache_seconds``) and must hold one of the service's access
scopes (``JUPYTERHUB_OAUTH_ACCESS_SCOPES``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from amalthea.singleuser.scopes import access_granted

__all__ = ["HubOAuth", "authenticated", "service_app"]


@dataclass
class HubOAuth:
    api_url: str
    api_token: str
    client_id: str
    callback_url: str
    prefix: str
    base_url: str = "/"
    hub_host: str = ""
    access_scopes: list[str] = field(default_factory=list)
    cache_seconds: float = 300.0
    _cache: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HubOAuth:
        e = dict(os.environ if env is None else env)
        name = e.get("JUPYTERHUB_SERVICE_NAME", "")
        missing = [k for k in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN") if not e.get(k)]
        if missing:
            raise RuntimeError(f"Not started by a hub: {', '.join(missing)} not set")
        prefix = e.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{name}/"
        return cls(
            api_url=e["JUPYTERHUB_API_URL"].rstrip("/"), api_token=e["JUPYTERHUB_API_TOKEN"],
            client_id=e.get("JUPYTERHUB_CLIENT_ID") or f"service-{name}",
            callback_url=e.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or prefix + "oauth_callback",
            prefix=prefix, base_url=e.get("JUPYTERHUB_BASE_URL", "/"),
            hub_host=e.get("JUPYTERHUB_HOST", ""),
            access_scopes=json.loads(e.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES") or "[]"),
        )  # fmt: skip

    # ---- hub calls -------------------------------------------------------------------------
    async def identify(self, token: str) -> dict[str, Any] | None:
        """The hub's model of the token's owner (incl. ``scopes``), or None if invalid."""
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        req = HTTPRequest(self.api_url + "/user", headers={"Authorization": f"token {token}"})
        try:
            resp = await AsyncHTTPClient().fetch(req)
            model: dict[str, Any] | None = json.loads(resp.body)
        except HTTPClientError as e:
            if e.code != 403:
                raise
            model = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self.cache_seconds, model)
        return model

    def allowed(self, model: dict[str, Any]) -> bool:
        return access_granted(model.get("scopes") or [], self.access_scopes)

    def authorize_url(self, state: str, challenge: str) -> str:
        query = urlencode({
            "client_id": self.client_id, "redirect_uri": self.callback_url,
            "response_type": "code", "state": state,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{self.hub_host}{self.base_url}hub/api/oauth2/authorize?{query}"

    async def exchange(self, code: str, verifier: str) -> str:
        body = urlencode({
            "client_id": self.client_id, "client_secret": self.api_token,
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.callback_url, "code_verifier": verifier,
        })  # fmt: skip
        req = HTTPRequest(self.api_url + "/oauth2/token", method="POST", body=body,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        resp = await AsyncHTTPClient().fetch(req)
        return str(json.loads(resp.body)["access_token"])

    # ---- tornado glue ---------------------------------------------------------------------
    class Handler(web.RequestHandler):
        """Base handler: ``self.current_user`` is the hub's user model or None."""

        @property
        def hub_auth(self) -> HubOAuth:
            return self.settings["hub_auth"]  # type: ignore[no-any-return]

        async def prepare(self) -> None:
            auth = self.hub_auth
            token = None
            header = self.request.headers.get("Authorization", "")
            if header.lower().startswith(("token ", "bearer ")):
                token = header.split(None, 1)[1].strip()
            if token is None:
                raw = self.get_signed_cookie(auth.client_id)
                token = raw.decode() if raw else None
            model = await auth.identify(token) if token else None
            self.current_user = model if model and auth.allowed(model) else None
            self._identified = model

        def login_redirect(self) -> None:
            auth = self.hub_auth
            verifier = secrets.token_urlsafe(48)
            state = secrets.token_urlsafe(16)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            self.set_signed_cookie(
                f"{auth.client_id}-oauth-state",
                json.dumps({"state": state, "verifier": verifier, "next": self.request.uri}),
                expires_days=600 / 86400, path=auth.prefix, httponly=True,
            )  # fmt: skip
            self.redirect(auth.authorize_url(state, challenge.decode().rstrip("=")))


def authenticated(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: anonymous browsers go through the hub's login; a user who is logged in but
    lacks the access scope gets 403; API clients without a valid token get 403."""

    @functools.wraps(method)
    def wrapper(self: HubOAuth.Handler, *args: Any, **kwargs: Any) -> Any:
        if self.current_user is None:
            if self._identified is not None:
                raise web.HTTPError(
                    403, reason=f"user {self._identified.get('name')} is not allowed"
                )
            if (
                self.request.method in ("GET", "HEAD")
                and "Authorization" not in self.request.headers
            ):
                self.login_redirect()
                return None
            raise web.HTTPError(403)
        return method(self, *args, **kwargs)

    return wrapper


class _CallbackHandler(HubOAuth.Handler):
    async def get(self) -> None:
        auth = self.hub_auth
        raw = self.get_signed_cookie(f"{auth.client_id}-oauth-state", max_age_days=600 / 86400)
        if raw is None:
            raise web.HTTPError(400, reason="OAuth state cookie missing or expired: log in again")
        saved = json.loads(raw)
        if self.get_argument("error", None):
            raise web.HTTPError(400, reason=f"OAuth error: {self.get_argument('error')}")
        if not secrets.compare_digest(saved["state"], self.get_argument("state", "")):
            raise web.HTTPError(403, reason="OAuth state mismatch")
        token = await auth.exchange(self.get_argument("code", ""), saved["verifier"])
        self.clear_cookie(f"{auth.client_id}-oauth-state", path=auth.prefix)
        self.set_signed_cookie(auth.client_id, token, path=auth.prefix, httponly=True,
                               samesite="Lax")  # fmt: skip
        nxt = saved.get("next") or auth.prefix
        self.redirect(nxt if nxt.startswith(auth.prefix) else auth.prefix)


class ServiceApp(web.Application):
    def listen_from_env(self) -> None:
        """Listen where ``JUPYTERHUB_SERVICE_URL`` says and run forever."""
        import asyncio

        url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])

        async def main() -> None:
            self.listen(url.port or 80, url.hostname or "127.0.0.1")
            await asyncio.Event().wait()

        asyncio.run(main())


def service_app(handlers: list[tuple[Any, ...]], auth: HubOAuth | None = None,
                **settings: Any) -> ServiceApp:  # fmt: skip
    """A tornado app serving ``handlers`` (paths relative to the service prefix) plus the OAuth
    callback. Cookie secret: ``JUPYTERHUB_SERVICE_COOKIE_SECRET`` or random per process."""
    auth = auth or HubOAuth.from_env()
    secret = os.environ.get("JUPYTERHUB_SERVICE_COOKIE_SECRET") or secrets.token_hex(32)
    routes: list[tuple[Any, ...]] = [(auth.prefix + "oauth_callback", _CallbackHandler)]
    routes += [(auth.prefix + p.lstrip("/"), *rest) for p, *rest in handlers]
    return ServiceApp(routes, hub_auth=auth, cookie_secret=secret, **settings)
