"""The authenticator contract.

An authenticator turns what a person presents at login (a form, a redirect back from an
identity provider, a trusted header) into an :class:`AuthResult`, or refuses. The hub owns
everything else: sessions, the user table, groups, tokens. Authenticators never see the
database; they get a narrow :class:`AuthContext` when they need hub facilities.

Exceptions:
- return ``None`` from :meth:`Authenticator.authenticate` for "wrong credentials" (the hub
  shows a generic "invalid username or password" and counts the failure);
- raise :class:`AuthError` with a ``user_message`` when the person should be told something
  specific (account locked, awaiting approval, identity service unreachable); ``log_message``
  is for the admin's log and may name URLs and errors, never secrets.
"""

from __future__ import annotations

import re
import unicodedata
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from traitlets import Bool, Dict, Integer, Set, Unicode
from traitlets.config import LoggingConfigurable

from amalthea.plugins import ABCTraitletsMeta

#: Usernames must be usable in URLs, file names and (for the local spawner) Unix accounts.
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,63}$")


class AuthError(Exception):
    """Login refused for a reason the person should see (status 403 unless ``status`` given)."""

    def __init__(
        self,
        user_message: str,
        log_message: str = "",
        status: int = 403,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(log_message or user_message)
        self.user_message = user_message
        self.log_message = log_message or user_message
        self.status = status
        #: extra response headers, e.g. ``WWW-Authenticate: Negotiate`` for SPNEGO challenges
        self.headers = dict(headers or {})
        #: set once ``log_message`` is in the log (by the plugin), so the hub does not repeat it
        self.logged = False


@dataclass
class LoginRequest:
    """What the person presented. ``form`` holds form fields (username, password, otp...)."""

    form: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    remote_ip: str = ""
    #: absolute URL of the hub as the browser sees it, e.g. "http://127.0.0.1:8000/hub/"
    hub_url: str = ""


@dataclass
class AuthResult:
    """A successful authentication.

    ``admin``/``groups`` of ``None`` mean "this authenticator does not manage it": the hub keeps
    what it has. ``auth_state`` is stored encrypted and handed back on refresh and spawn.
    """

    name: str
    admin: bool | None = None
    groups: list[str] | None = None
    auth_state: dict[str, Any] | None = None
    user_info: dict[str, Any] | None = None


class CompleteLogin(Protocol):
    """Hub callback that finishes a login started by an authenticator's own handler.

    Redirect-style authenticators (OIDC, LTI) receive the browser back on a route from
    :meth:`Authenticator.login_handlers`; once they have an AuthResult they call
    ``await authenticator.context.complete_login(handler, result, next_url)``. The hub then applies
    :meth:`Authenticator.finish_login` policy, stores the user, sets the session cookie and
    redirects to ``next_url`` (checked to be on-site), or renders a clear error page.
    """

    async def __call__(self, handler: Any, result: AuthResult, next_url: str = "") -> None: ...


@dataclass
class AuthContext:
    """Hub facilities an authenticator may use. Filled in by the hub at startup."""

    data_dir: str = "."
    hub_prefix: str = "/hub/"
    #: public base URL of the hub as browsers reach it ("http://127.0.0.1:8000"), "" if unknown
    public_url: str = ""
    #: set by the hub; see CompleteLogin
    complete_login: CompleteLogin | None = None
    #: async storage private to the authenticator (local accounts, TOTP secrets...); hub-defined
    store: Any = None


class Authenticator(LoggingConfigurable, metaclass=ABCTraitletsMeta):
    """Base class of all authenticators. Subclasses implement :meth:`authenticate`."""

    #: How the login page presents this authenticator: a username/password form, a button that
    #: redirects to an identity provider, or nothing at all (a trusted header logs in directly).
    login_kind: Literal["form", "redirect", "header"] = "form"
    #: Short human name shown on the login button for "redirect" authenticators.
    display_name: str = "Sign in"
    #: True when usernames are accounts of this machine (PAM). As root, the hub then defaults
    #: to the ``local`` spawner (each server runs as that account); otherwise to ``local-shared``.
    system_accounts: bool = False

    allowed_users = Set(
        Unicode(),
        help="Usernames that may log in. Empty with allow_all=False means nobody but admins.",
    ).tag(config=True)
    allowed_groups = Set(Unicode(), help="Members of these identity-system groups may log in.").tag(
        config=True
    )
    blocked_users = Set(Unicode(), help="Usernames that may never log in.").tag(config=True)
    admin_users = Set(Unicode(), help="Usernames that are hub admins.").tag(config=True)
    admin_groups = Set(
        Unicode(), help="Members of these identity-system groups are hub admins."
    ).tag(config=True)
    allow_all = Bool(
        False, help="Let every person the identity system accepts log in (no allow list)."
    ).tag(config=True)
    manage_groups = Bool(
        False,
        help="Sync groups from the identity system into hub groups on each login. Groups an "
        "admin made by hand are left alone.",
    ).tag(config=True)
    enable_auth_state = Bool(
        False,
        help="Keep auth_state (tokens, claims) encrypted in the database (needs AMALTHEA_CRYPT_KEY).",
    ).tag(config=True)
    auth_refresh_age = Integer(
        300,
        help="Seconds after which the hub calls refresh_user again for a person who is using it "
        "(checked on requests with the login cookie). 0: never by age.",
    ).tag(config=True)
    refresh_pre_spawn = Bool(
        True,
        help="Call refresh_user before starting a server, so it starts with fresh tokens; a "
        "person whose login cannot be refreshed is asked to log in again.",
    ).tag(config=True)
    username_map = Dict(
        {},
        help="Map names from the identity system to hub usernames, e.g. {'Alice.Smith': 'alice'}.",
    ).tag(config=True)

    def __init__(self, context: AuthContext | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context or AuthContext()

    # ---- the contract -------------------------------------------------------------------
    @abstractmethod
    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        """Check credentials. Return an AuthResult, ``None`` for bad credentials, or raise AuthError."""

    async def startup(self) -> None:
        """Validate config and connect to the identity system; raise ValueError with a clear message."""

    async def refresh_user(self, result: AuthResult) -> AuthResult | bool:
        """Called before a user's auth_state is used. Return True (still fine), False (log in
        again), or a new AuthResult (refreshed tokens/groups)."""
        return True

    async def spawn_environment(self, result: AuthResult) -> dict[str, str]:
        """Extra environment for the user's server (e.g. an access token from auth_state)."""
        return {}

    def login_handlers(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """Extra Tornado routes under /hub/ (OAuth callbacks...), as (pattern, handler, kwargs)."""
        return []

    def login_url(self, hub_prefix: str) -> str | None:
        """Where the login page's button points (redirect authenticators), e.g.
        ``hub_prefix + "oauth_login"``; the hub adds ``?next=``. None: no button (people arrive
        from elsewhere, e.g. LTI launches), the page shows ``display_name`` as a hint."""
        return None

    def logout_url(self, hub_prefix: str) -> str | None:
        """Where to send the browser after hub logout (IdP end-session), or None."""
        return None

    # ---- shared policy, not meant to be overridden ------------------------------------------
    def normalize_username(self, name: str) -> str:
        """NFKC, strip, lower-case, then ``username_map``. Rule documented in docs/auth.md."""
        name = unicodedata.normalize("NFKC", name).strip().lower()
        return str(self.username_map.get(name, name))

    def validate_username(self, name: str) -> str | None:
        """Return an error message if ``name`` cannot be a hub username, else None."""
        if not name:
            return "The username is empty."
        if not USERNAME_RE.match(name):
            return (
                f"The username {name[:80]!r} is not allowed: use 1-64 characters from a-z, 0-9 and "
                "'.', '_', '-', '@', '+', starting with a letter or digit."
            )
        return None

    def is_admin(self, result: AuthResult) -> bool | None:
        if result.name in self.admin_users:
            return True
        if result.groups is not None and self.admin_groups & set(result.groups):
            return True
        return result.admin

    def check_allowed(self, result: AuthResult) -> bool:
        """Allow-list policy. Admins are always allowed; blocked users never."""
        if result.name in self.blocked_users:
            return False
        if self.allow_all or result.name in self.admin_users or result.name in self.allowed_users:
            return True
        if result.groups is not None and self.allowed_groups & set(result.groups):
            return True
        return bool(result.admin)

    async def login(self, request: LoginRequest) -> AuthResult | None:
        """authenticate + :meth:`finish_login`. Used by the hub for form and header logins."""
        result = await self.authenticate(request)
        if result is None:
            return None
        return self.finish_login(result)

    def finish_login(self, result: AuthResult) -> AuthResult:
        """normalize + validate + admin + allow/block policy; raises AuthError when refused."""
        result.name = self.normalize_username(result.name)
        problem = self.validate_username(result.name)
        if problem:
            raise AuthError(problem, status=400)
        result.admin = self.is_admin(result)
        if not self.check_allowed(result):
            raise AuthError(
                "You are not on the list of people allowed to use this hub. Ask its administrator.",
                log_message=f"login refused for {result.name!r}: not allowed by allow/block lists",
            )
        return result
