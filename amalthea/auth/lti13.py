"""LTI 1.3 launches from a learning platform (Canvas, Moodle, ...) as logins (``lti13``).

The platform starts with an OIDC third-party-initiated login:

1. ``GET|POST /hub/lti13/login`` (iss, login_hint, target_link_uri, lti_message_hint):
   we check the issuer, remember state+nonce server-side and redirect the browser to the
   platform's authorization endpoint (``response_type=id_token``, ``response_mode=form_post``).
2. ``POST /hub/lti13/launch`` (id_token, state): we take the state out of the store (single
   use), validate the ID token against the platform's JWKS (signature, iss, aud = our client id,
   exp/iat, nonce) and the LTI claims (version, message type, deployment id), then map the person:
   username from a claim, groups = the course (context) id, admin from the course roles.

Why server-side state: see _pending.py (the launch is a cross-site POST; cookies are unreliable).
Both endpoints skip Tornado's XSRF check: the platform cannot know our XSRF cookie, and the
signed id_token bound to our single-use state/nonce is the protection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlparse

from traitlets import Float, Int, Set, Unicode

from amalthea.auth._handlers import AuthPageHandler
from amalthea.auth._jwt import (
    DEFAULT_ALGORITHMS,
    JWKSCache,
    TokenError,
    UnreachableError,
    validate_jwt,
)
from amalthea.auth._pending import PendingStore, new_pending
from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
ROLES_CLAIM = LTI + "roles"
CONTEXT_CLAIM = LTI + "context"
UNREACHABLE = "the login service is unreachable, try again later"
INVALID_LAUNCH = (
    "This launch is not valid or was already used. Open the tool again from your course."
)


class LTI13Authenticator(Authenticator):
    """Log in people launched from an LTI 1.3 platform."""

    # People arrive from the platform, not from our login page: login_url() is None, so the
    # login page can only say where to go (display_name).
    login_kind = "redirect"
    display_name = "Open this hub from your course in the learning platform"

    issuer = Unicode(
        "", help="The platform's issuer (iss), e.g. https://canvas.instructure.com."
    ).tag(config=True)
    client_id = Unicode("", help="Client id the platform gave this tool.").tag(config=True)
    deployment_ids = Set(Unicode(), help="Accepted deployment ids (required).").tag(config=True)
    authorize_url = Unicode("", help="The platform's OIDC authorization endpoint.").tag(config=True)
    jwks_uri = Unicode("", help="The platform's public keyset URL.").tag(config=True)
    launch_url = Unicode(
        "", help="Our launch URL as registered (default <hub URL>/hub/lti13/launch)."
    ).tag(config=True)
    username_claim = Unicode(
        "sub", help="Top-level claim used as the username (sub, email, name, ...)."
    ).tag(config=True)
    admin_roles = Set(
        Unicode(),
        {"Instructor", "Administrator"},
        help="LTI roles (short names like 'Instructor' or full role URIs) that make a person hub admin.",
    ).tag(config=True)
    message_types = Set(
        Unicode(), {"LtiResourceLinkRequest"}, help="Accepted LTI message types."
    ).tag(config=True)
    leeway = Int(60, help="Clock skew tolerated on exp/iat, in seconds.").tag(config=True)
    http_timeout = Float(10.0, help="Seconds before fetching the platform JWKS is given up.").tag(
        config=True
    )
    login_timeout = Int(600, help="Seconds between login initiation and launch.").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending = PendingStore(ttl=self.login_timeout)
        self._jwks: JWKSCache | None = None

    async def startup(self) -> None:
        missing = [
            n for n in ("issuer", "client_id", "authorize_url", "jwks_uri") if not getattr(self, n)
        ]
        if missing:
            raise ValueError(
                f"LTI13Authenticator needs {', '.join(missing)} (from the platform's tool registration)."
            )
        if not self.deployment_ids:
            raise ValueError(
                "LTI13Authenticator.deployment_ids is empty: add the platform's deployment id(s)."
            )

    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        raise AuthError("Open this hub from your course in the learning platform.", status=400)

    def login_url(self, hub_prefix: str) -> str | None:
        """No hub-initiated login: LTI logins always start at the platform."""
        return None

    def login_handlers(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [
            ("/lti13/login", LTI13LoginHandler, {"authenticator": self}),
            ("/lti13/launch", LTI13LaunchHandler, {"authenticator": self}),
        ]

    async def validate_launch(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Signature and standard claims, then the LTI-specific ones; returns the claims."""
        if self._jwks is None:
            self._jwks = JWKSCache(self.jwks_uri, timeout=self.http_timeout)
        try:
            claims = await validate_jwt(
                id_token,
                self._jwks,
                issuer=self.issuer,
                audience=self.client_id,
                nonce=nonce,
                leeway=self.leeway,
                algorithms=DEFAULT_ALGORITHMS,
            )
        except TokenError as e:
            raise AuthError(
                INVALID_LAUNCH, log_message=f"LTI id_token rejected: {e.reason}", status=400
            ) from e
        except UnreachableError as e:
            raise AuthError(UNREACHABLE, log_message=str(e), status=503) from e
        problems = []
        if claims.get(LTI + "version") != "1.3.0":
            problems.append(f"version {claims.get(LTI + 'version')!r} is not 1.3.0")
        if claims.get(LTI + "message_type") not in self.message_types:
            problems.append(
                f"message_type {claims.get(LTI + 'message_type')!r} not in {sorted(self.message_types)}"
            )
        if claims.get(LTI + "deployment_id") not in self.deployment_ids:
            problems.append(
                f"deployment_id {claims.get(LTI + 'deployment_id')!r} not in deployment_ids"
            )
        if problems:
            raise AuthError(
                INVALID_LAUNCH,
                log_message="LTI launch rejected: " + "; ".join(problems),
                status=400,
            )
        return claims

    def result_from_claims(self, claims: dict[str, Any]) -> AuthResult:
        name = claims.get(self.username_claim)
        if not isinstance(name, str) or not name:
            raise AuthError(
                "The learning platform did not say who you are. Ask the hub administrator.",
                log_message=f"LTI launch has no {self.username_claim!r} claim; present: {sorted(claims)}",
                status=403,
            )
        roles = [str(r) for r in claims.get(ROLES_CLAIM) or []]
        short = {r.rsplit("#", 1)[-1] for r in roles}
        context = claims.get(CONTEXT_CLAIM) or {}
        groups = [str(context["id"])] if isinstance(context, dict) and context.get("id") else []
        return AuthResult(
            name=name,
            admin=bool(self.admin_roles & (short | set(roles))),
            groups=groups,
            auth_state={"claims": claims},
            user_info={"roles": roles, "context": context},
        )


class LTI13LoginHandler(AuthPageHandler):
    """Step 1: third-party-initiated login from the platform."""

    authenticator: LTI13Authenticator

    def check_xsrf_cookie(self) -> None:
        """The platform POSTs cross-site; the issuer check and state/nonce protect this step."""

    async def get(self) -> None:
        auth = self.authenticator
        iss = self.get_argument("iss", "")
        login_hint = self.get_argument("login_hint", "")
        client_id = self.get_argument("client_id", "")
        if iss != auth.issuer or not login_hint or (client_id and client_id != auth.client_id):
            self.render_auth_error(
                AuthError(
                    "This course is not connected to this hub. Ask the hub administrator.",
                    log_message=f"LTI login initiation refused: iss={iss!r} client_id={client_id!r} "
                    f"login_hint={'set' if login_hint else 'missing'} (expected iss={auth.issuer!r})",
                    status=400,
                )
            )
            return
        launch_url = auth.launch_url or self.hub_base_url() + self.hub_prefix + "lti13/launch"
        target = self.get_argument("target_link_uri", "")
        parsed = urlparse(target)
        next_url = (
            parsed.path + (f"?{parsed.query}" if parsed.query else "")
            if parsed.netloc == self.request.host
            else ""
        )
        pending = new_pending(next_url=next_url, redirect_uri=launch_url, pkce=False)
        auth.pending.put(pending)
        params = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": auth.client_id,
            "redirect_uri": launch_url,
            "login_hint": login_hint,
            "state": pending.state,
            "nonce": pending.nonce,
        }
        if self.get_argument("lti_message_hint", ""):
            params["lti_message_hint"] = self.get_argument("lti_message_hint")
        self.set_header("Cache-Control", "no-store")
        self.redirect(
            auth.authorize_url + ("&" if "?" in auth.authorize_url else "?") + urlencode(params)
        )

    post = get


class LTI13LaunchHandler(AuthPageHandler):
    """Step 2: the platform form-posts the signed launch."""

    authenticator: LTI13Authenticator

    def check_xsrf_cookie(self) -> None:
        """Cross-site form_post by design; the single-use state + nonce-bound JWT protect it."""

    async def post(self) -> None:
        try:
            await self._launch()
        except AuthError as e:
            self.render_auth_error(e, retry=self.hub_prefix + "login")

    async def _launch(self) -> None:
        auth = self.authenticator
        if self.get_argument("error", ""):
            raise AuthError(
                "The learning platform did not complete the launch.",
                log_message=f"LTI platform error {self.get_argument('error')!r}: "
                f"{self.get_argument('error_description', '')!r}",
                status=403,
            )
        state = self.get_argument("state", "")
        id_token = self.get_argument("id_token", "")
        pending = auth.pending.pop(state) if state else None
        if pending is None or not id_token:
            raise AuthError(
                INVALID_LAUNCH,
                status=400,
                log_message="LTI launch with unknown, expired or already used state",
            )
        claims = await auth.validate_launch(id_token, pending.nonce)
        await self.finish_login(auth.result_from_claims(claims), pending.next_url)
