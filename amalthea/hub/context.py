"""The hub's shared services, typed, handed to every request handler as ``self.hub``.

Built once by ``app.py``; handlers and pages use these and nothing else (no global app object).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amalthea.auth.base import Authenticator
    from amalthea.hub.lifecycle import ServerManager
    from amalthea.hub.oauth import OAuthProvider
    from amalthea.hub.security.identity import IdentityResolver
    from amalthea.hub.security.ratelimit import LoginThrottle
    from amalthea.hub.store.accounts import SQLAccountStore
    from amalthea.hub.store.db import Database
    from amalthea.hub.web.templates import PageTemplates


@dataclass
class HubSettings:
    base_url: str = "/"
    #: public origin used for absolute links ("http://127.0.0.1:8000"); "" = relative
    public_url: str = ""
    cookie_max_age_days: float = 14.0
    cookie_secure: bool = False
    allow_named_servers: bool = False
    named_server_limit_per_user: int = 0
    redirect_to_server: bool = True
    default_url: str = ""
    shutdown_on_logout: bool = False
    login_burst: int = 10
    login_per_minute: float = 10.0
    #: cap on API-created token lifetimes (seconds); 0 = unlimited
    token_expires_in_max_seconds: int = 0

    @property
    def hub_prefix(self) -> str:
        return self.base_url + "hub/"


@dataclass
class HubContext:
    settings: HubSettings
    db: Database
    cookie_secret: bytes
    authenticator: Authenticator
    identities: IdentityResolver
    servers: ServerManager
    oauth: OAuthProvider
    throttle: LoginThrottle
    templates: PageTemplates
    accounts: SQLAccountStore
    spawner_class: type
    proxy: Any = None
    version: str = ""
    #: one-time first-run setup code (hash), None once an admin exists
    setup_code_hash: str | None = None
    #: extra values plugins (profiles, admin panel) may attach for their pages
    extras: dict[str, Any] = field(default_factory=dict)
    shutdown: Any = None
