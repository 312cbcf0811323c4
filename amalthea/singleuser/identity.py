"""Who is making this request, according to the hub? (jupyter_server IdentityProvider.)

Token sources, in order: ``?token=`` (websockets, or when ``JUPYTERHUB_ALLOW_TOKEN_IN_URL``
is set), ``Authorization: token|bearer``, then our own signed cookie (named after the OAuth
client id) holding the OAuth access token. Each token is resolved through
``GET {API_URL}/user``; answers are cached for :data:`IDENTITY_TTL` seconds per
(hub session id, token hash), so a revoked token stops working within that time.

Outcomes: no or invalid token -> ``None`` (jupyter_server then redirects browsers to our
``login`` handler, i.e. OAuth, and answers API calls 403); a valid identity without access
scopes -> 403; hub down -> 502.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from jupyter_server.auth import Authorizer, IdentityProvider, User
from tornado import web
from traitlets import Instance, default

from .hubclient import HubClient, HubError, HubRejected, HubUnavailable
from .hubenv import HubEnvironment, read_hub_environment
from .oauth import StateStore
from .scopes import access_granted, needs_owner_groups

__all__ = ["HubAuthorizer", "HubContext", "HubIdentityProvider", "HubUser", "IdentityCache"]

IDENTITY_TTL = 300.0
HUB_SESSION_COOKIE = "jupyterhub-session-id"


@dataclass
class HubUser(User):
    """A jupyter_server user backed by the hub's user (or service) model."""

    hub_model: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_model(cls, model: dict[str, Any]) -> HubUser:
        info = model.get("user_info") or {}
        name = str(model["name"])
        return cls(
            username=name,
            name=info.get("name") or name,
            display_name=info.get("display_name") or "",
            initials=info.get("initials"),
            avatar_url=info.get("avatar_url"),
            color=info.get("color"),
            hub_model=model,
        )


class IdentityCache:
    """Hub identities by (session id, token hash), each kept ``ttl`` seconds."""

    def __init__(self, ttl: float = IDENTITY_TTL, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    @staticmethod
    def key(session_id: str, token: str) -> tuple[str, str]:
        # Never keep raw tokens as dict keys: a memory dump should not leak them.
        return session_id, hashlib.sha256(token.encode()).hexdigest()

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: tuple[str, str], model: dict[str, Any]) -> None:
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (time.monotonic() + self.ttl, model)

    def forget_token(self, token: str) -> None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        self._entries = {k: v for k, v in self._entries.items() if k[1] != digest}


@dataclass
class HubContext:
    """Everything the hub integration shares: environment, client, login and identity state."""

    env: HubEnvironment
    client: HubClient
    states: StateStore = field(default_factory=StateStore)
    identities: IdentityCache = field(default_factory=IdentityCache)
    owner_groups: tuple[float, list[str]] | None = None  # (expiry, groups)

    @classmethod
    def from_env(cls, env: HubEnvironment) -> HubContext:
        return cls(env=env, client=HubClient(env.api_url, env.api_token))

    async def groups_of_owner(self) -> list[str]:
        if self.owner_groups and self.owner_groups[0] > time.monotonic():
            return self.owner_groups[1]
        groups = await self.client.user_groups(self.env.user)
        self.owner_groups = (time.monotonic() + IDENTITY_TTL, groups)
        return groups


def _is_websocket(handler: web.RequestHandler) -> bool:
    return handler.request.headers.get("Upgrade", "").lower() == "websocket"


class HubIdentityProvider(IdentityProvider):
    """Identify requests with hub-issued tokens; log browsers in with OAuth against the hub."""

    hub = Instance(HubContext, help="Hub environment and client; read from JUPYTERHUB_* env.")

    @default("hub")
    def _hub_default(self) -> HubContext:
        return HubContext.from_env(read_hub_environment())

    @default("login_handler_class")
    def _login_handler_default(self) -> type[web.RequestHandler]:
        from .handlers import OAuthLoginHandler

        return OAuthLoginHandler

    @default("logout_handler_class")
    def _logout_handler_default(self) -> type[web.RequestHandler]:
        from .handlers import HubLogoutHandler

        return HubLogoutHandler

    # jupyter_server's own shared-secret token would be a second, hub-unaware way in.
    @default("token")
    def _token_default(self) -> str:
        return ""

    @default("need_token")
    def _need_token_default(self) -> bool:
        return False

    def get_handlers(self) -> list[tuple[str, object]]:
        from .handlers import OAuthCallbackHandler

        return [
            *super().get_handlers(),
            (f"/{self.hub.env.callback_path}", OAuthCallbackHandler),
        ]

    def get_cookie_name(self, handler: web.RequestHandler) -> str:
        return self.hub.env.cookie_name

    def identity_model(self, user: User) -> dict[str, Any]:
        model = asdict(user)
        model.pop("hub_model", None)
        return model

    def validate_security(self, app: Any, ssl_options: dict[str, Any] | None = None) -> None:
        # The base class warns "no authentication" because our token is empty; we do have it.
        return None

    def get_token(self, handler: web.RequestHandler) -> str | None:
        token, _ = self.find_token(handler)
        return token

    def find_token(self, handler: web.RequestHandler) -> tuple[str | None, str]:
        if _is_websocket(handler) or self.hub.env.allow_token_in_url:
            url_token = handler.get_argument("token", "")
            if url_token:
                return url_token, "url"
        match = self.auth_header_pat.match(handler.request.headers.get("Authorization", ""))
        if match:
            return match.group(2).strip(), "header"
        cookie = handler.get_secure_cookie(self.hub.env.cookie_name)
        if cookie:
            return cookie.decode("utf-8", "replace"), "cookie"
        return None, ""

    async def get_user(self, handler: web.RequestHandler) -> User | None:
        if hasattr(handler, "_amalthea_user"):
            user: User | None = handler._amalthea_user
            return user
        user = await self._authenticate(handler)
        handler._amalthea_user = user  # type: ignore[attr-defined]
        return user

    async def _authenticate(self, handler: web.RequestHandler) -> HubUser | None:
        token, source = self.find_token(handler)
        if not token:
            return None
        model = await self.identify(handler, token)
        if model is None:
            if source == "cookie" and not _is_websocket(handler):
                self.clear_login_cookie(handler)
            return None
        await self.check_access(model)
        if source != "cookie":
            # Token-authenticated requests skip XSRF checks, as in jupyter_server.
            handler._token_authenticated = True  # type: ignore[attr-defined]
            handler._amalthea_token = token  # type: ignore[attr-defined]
        return HubUser.from_model(model)

    async def identify(self, handler: web.RequestHandler, token: str) -> dict[str, Any] | None:
        """The hub's model for ``token`` (cached), ``None`` if the hub does not know it."""
        session_id = handler.get_cookie(HUB_SESSION_COOKIE) or ""
        key = self.hub.identities.key(session_id, token)
        model = self.hub.identities.get(key)
        if model is not None:
            return model
        try:
            model = await self.hub.client.identify(token)
        except HubUnavailable as exc:
            self.log.error("Cannot identify a request: %s", exc)
            raise web.HTTPError(502, "The hub is not reachable to check your login") from exc
        except HubRejected as exc:
            self.log.error("Unexpected hub answer: %s", exc)
            raise web.HTTPError(500, str(exc)) from exc
        if model is not None:
            self.hub.identities.put(key, model)
        return model

    async def check_access(self, model: dict[str, Any]) -> None:
        """Raise 403 unless ``model``'s scopes grant access to this server."""
        held = [str(s) for s in model.get("scopes") or []]
        groups: list[str] = []
        if needs_owner_groups(held):
            try:
                groups = await self.hub.groups_of_owner()
            except HubError as exc:
                self.log.error("Cannot read the owner's groups for a group scope: %s", exc)
                raise web.HTTPError(502, "The hub is not reachable to check your access") from exc
        if not access_granted(held, self.hub.env.access_scopes, groups):
            name = model.get("name", "?")
            self.log.warning("%s %s has no access to this server", model.get("kind", "user"), name)
            raise web.HTTPError(403, f"user {name} is not allowed.")

    def set_login_cookie(self, handler: web.RequestHandler, user: User) -> None:
        raise NotImplementedError("the hub login cookie is set by the OAuth callback")

    def set_token_cookie(self, handler: web.RequestHandler, token: str) -> None:
        """Remember an OAuth access token in this browser (signed, HttpOnly, our prefix)."""
        handler.set_secure_cookie(
            self.hub.env.cookie_name, token, expires_days=None, **self.cookie_options_for(handler)
        )

    def clear_login_cookie(self, handler: web.RequestHandler) -> None:
        handler.clear_cookie(self.hub.env.cookie_name, path=self.hub.env.cookie_path)

    def cookie_options_for(self, handler: web.RequestHandler) -> dict[str, Any]:
        options: dict[str, Any] = {"httponly": True, "path": self.hub.env.cookie_path}
        if handler.request.protocol == "https" or self.hub.env.cookie_host_prefix:
            options["secure"] = True
        options.update(self.cookie_options)
        return options


class HubAuthorizer(Authorizer):
    """Everyone the identity provider lets in may do everything: the hub's scope
    ``access:servers`` is all-or-nothing, so the access check happens once, at identify time."""

    def is_authorized(
        self, handler: web.RequestHandler, user: User, action: str, resource: str
    ) -> bool:
        return isinstance(user, HubUser)
