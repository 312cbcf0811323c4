"""OAuth2 / OpenID Connect login (``oidc``): authorization code + PKCE (S256) + state + nonce.

Flow: ``/hub/oauth_login`` redirects to the IdP's authorization endpoint; the IdP sends the
browser back to ``/hub/oauth_callback``; we exchange the code at the token endpoint, validate the
ID token (signature via JWKS, iss, aud, exp, iat, nonce), read userinfo, and map claims to a
username, groups and admin. Tokens and claims go into ``auth_state``; ``refresh_user`` uses the
refresh token shortly before the access token expires.

Endpoints come from the discovery document ``{issuer}/.well-known/openid-configuration`` unless
set explicitly (plain OAuth2 providers such as GitHub set them all and have no ID token; see
oidc_presets.py). Discovery is lazy and cached, so an IdP that is down at hub start only breaks
its own logins, with a clear page, while the hub keeps serving everyone else.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, List, Unicode

from amalthea.auth._jwt import DEFAULT_ALGORITHMS, JWKSCache, TokenError, UnreachableError
from amalthea.auth._jwt import validate_jwt as _validate_jwt
from amalthea.auth._oauth_handlers import OAuthCallbackHandler, OAuthLoginHandler
from amalthea.auth._pending import CookieSealer, PendingLogin
from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest

UNREACHABLE = "the login service is unreachable, try again later"


def pkce_challenge(verifier: str) -> str:
    """S256 code challenge (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def claim_path(claims: dict[str, Any], path: str) -> Any:
    """``"realm_access.roles"`` -> claims["realm_access"]["roles"]; exact keys win over dots."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class OIDCAuthenticator(Authenticator):
    """Log in through an OpenID Connect (or OAuth2) identity provider."""

    login_kind = "redirect"
    display_name = "Sign in with OpenID Connect"

    issuer = Unicode("", help="IdP issuer URL; its discovery document fills in the endpoints.").tag(
        config=True
    )
    client_id = Unicode("", help="OAuth client id registered at the IdP.").tag(config=True)
    client_secret = Unicode("", help="OAuth client secret (empty for public clients).").tag(
        config=True
    )
    authorize_url = Unicode("", help="Authorization endpoint (default: from discovery).").tag(
        config=True
    )
    token_url = Unicode("", help="Token endpoint (default: from discovery).").tag(config=True)
    userinfo_url = Unicode("", help="Userinfo endpoint (default: from discovery).").tag(config=True)
    jwks_uri = Unicode("", help="JWKS URL for ID token keys (default: from discovery).").tag(
        config=True
    )
    end_session_url = Unicode(
        "", help="RP-initiated logout endpoint (default: from discovery)."
    ).tag(config=True)
    callback_url = Unicode(
        "", help="Redirect URI registered at the IdP. Default: <hub URL>/hub/oauth_callback."
    ).tag(config=True)
    scope = List(Unicode(), ["openid", "profile", "email"], help="Scopes to request.").tag(
        config=True
    )
    extra_authorize_params = Dict(
        {}, help="Extra query parameters for the authorization request."
    ).tag(config=True)
    token_auth_method = CaselessStrEnum(
        ["client_secret_basic", "client_secret_post"],
        "client_secret_basic",
        help="How the client authenticates at the token endpoint.",
    ).tag(config=True)
    use_pkce = Bool(True, help="Send a PKCE S256 code challenge.").tag(config=True)
    use_userinfo = Bool(True, help="Read claims from the userinfo endpoint too.").tag(config=True)
    username_claim = Unicode(
        "preferred_username", help="Claim (dotted path allowed) that becomes the hub username."
    ).tag(config=True)
    groups_claim = Unicode(
        "groups", help="Claim (dotted path, e.g. realm_access.roles) listing the person's groups."
    ).tag(config=True)
    refresh_before_expiry = Int(
        300, help="Refresh the access token when it expires within this many seconds."
    ).tag(config=True)
    access_token_env = Unicode(
        "", help="If set, the user's server gets the access token in this environment variable."
    ).tag(config=True)
    enable_logout = Bool(True, help="Log out of the IdP too (RP-initiated logout).").tag(
        config=True
    )
    post_logout_redirect_url = Unicode(
        "", help="Where the IdP sends the browser after logout (must be registered there)."
    ).tag(config=True)
    http_timeout = Float(10.0, help="Seconds before a call to the IdP is given up.").tag(
        config=True
    )
    leeway = Int(60, help="Clock skew tolerated on exp/iat, in seconds.").tag(config=True)
    id_token_algorithms = List(
        Unicode(), list(DEFAULT_ALGORITHMS), help="Accepted ID token algorithms."
    ).tag(config=True)
    state_cookie_key = Unicode(
        "",
        help="Fernet key sealing the login cookie; set the same key on all hub replicas. "
        "Default: random per process (a login in flight fails across a restart).",
    ).tag(config=True)
    login_timeout = Int(600, help="Seconds a person has to complete the IdP login.").tag(
        config=True
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sealer = CookieSealer(self.state_cookie_key.encode() or None, ttl=self.login_timeout)
        self._metadata: dict[str, Any] | None = None
        self._jwks: JWKSCache | None = None

    # ---- configuration and discovery ---------------------------------------------------------
    async def startup(self) -> None:
        if not self.client_id:
            raise ValueError(
                f"{type(self).__name__}.client_id is not set: register the hub at the IdP."
            )
        if not self.issuer and not (self.authorize_url and self.token_url):
            raise ValueError(
                f"{type(self).__name__}: set issuer (for discovery) or authorize_url and token_url."
            )
        try:
            await self.metadata()
        except AuthError as e:
            # Not fatal: the hub serves other users; the next login retries discovery.
            self.log.warning(
                "OIDC discovery failed at startup, will retry at login: %s", e.log_message
            )

    @property
    def uses_id_token(self) -> bool:
        return "openid" in self.scope

    async def metadata(self) -> dict[str, Any]:
        """Endpoints: explicit settings over the (cached) discovery document."""
        if self._metadata is None:
            discovered: dict[str, Any] = {}
            explicit = [self.authorize_url, self.token_url]
            if self.uses_id_token:
                explicit.append(self.jwks_uri)
            if self.issuer and not all(explicit):
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                discovered = await self._get_json(url)
                if discovered.get("issuer") != self.issuer:
                    raise AuthError(
                        UNREACHABLE,
                        status=503,
                        log_message=f"discovery document {url} names issuer {discovered.get('issuer')!r}, "
                        f"not the configured {self.issuer!r}: fix {type(self).__name__}.issuer",
                    )
            self._metadata = {
                "authorization_endpoint": self.authorize_url
                or discovered.get("authorization_endpoint"),
                "token_endpoint": self.token_url or discovered.get("token_endpoint"),
                "userinfo_endpoint": self.userinfo_url or discovered.get("userinfo_endpoint"),
                "jwks_uri": self.jwks_uri or discovered.get("jwks_uri"),
                "end_session_endpoint": self.end_session_url
                or discovered.get("end_session_endpoint"),
            }
        return self._metadata

    async def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout) as client:
                response = await client.get(url, **kwargs)
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise AuthError(UNREACHABLE, log_message=f"GET {url} failed: {e!r}", status=503) from e
        if not isinstance(data, dict):
            raise AuthError(
                UNREACHABLE, log_message=f"GET {url}: expected a JSON object", status=503
            )
        return data

    # ---- the login flow ----------------------------------------------------------------------
    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        raise AuthError(
            f"This hub signs in through an identity provider: use the '{self.display_name}' button.",
            status=400,
        )

    def login_url(self, hub_prefix: str) -> str:
        """Where the login button points."""
        return hub_prefix + "oauth_login"

    def login_handlers(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [
            ("/oauth_login", OAuthLoginHandler, {"authenticator": self}),
            ("/oauth_callback", OAuthCallbackHandler, {"authenticator": self}),
        ]

    async def authorization_url(self, pending: PendingLogin) -> str:
        meta = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": pending.redirect_uri,
            "scope": " ".join(self.scope),
            "state": pending.state,
            **self.extra_authorize_params,
        }
        if self.uses_id_token:
            params["nonce"] = pending.nonce
        if pending.code_verifier:
            params["code_challenge"] = pkce_challenge(pending.code_verifier)
            params["code_challenge_method"] = "S256"
        endpoint = str(meta["authorization_endpoint"])
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    async def token_request(self, data: dict[str, str]) -> dict[str, Any]:
        """POST to the token endpoint. AuthError(400) on an OAuth error, (503) when unreachable."""
        url = str((await self.metadata())["token_endpoint"])
        auth: httpx.Auth | None = None
        if self.client_secret and self.token_auth_method == "client_secret_basic":  # noqa: S105 (a method name)
            auth = httpx.BasicAuth(self.client_id, self.client_secret)
        else:
            data = {**data, "client_id": self.client_id}
            if self.client_secret:
                data["client_secret"] = self.client_secret
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout) as client:
                if auth is not None:
                    client.auth = auth
                response = await client.post(url, data=data, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise AuthError(UNREACHABLE, log_message=f"POST {url} failed: {e!r}", status=503) from e
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500:
            raise AuthError(
                UNREACHABLE, status=503, log_message=f"POST {url}: HTTP {response.status_code}"
            )
        if response.status_code != 200 or "error" in body or "access_token" not in body:
            raise AuthError(
                "The identity provider refused to complete the sign-in. Please start again.",
                log_message=f"POST {url} ({data.get('grant_type')}): HTTP {response.status_code} "
                f"error={body.get('error')!r} {body.get('error_description', '')!r}",
                status=400,
            )
        return dict(body)

    async def exchange_code(self, code: str, pending: PendingLogin) -> AuthResult:
        """Code -> tokens -> validated claims -> AuthResult (before hub policy)."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
        }
        if pending.code_verifier:
            data["code_verifier"] = pending.code_verifier
        tokens = await self.token_request(data)
        claims = await self.identity(tokens, nonce=pending.nonce)
        return self.result_from_claims(claims, self.token_state(tokens, {}))

    async def validate_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        meta = await self.metadata()
        if self._jwks is None:
            if not meta.get("jwks_uri"):
                raise AuthError(
                    UNREACHABLE, status=503, log_message="no jwks_uri configured or discovered"
                )
            self._jwks = JWKSCache(str(meta["jwks_uri"]), timeout=self.http_timeout)
        try:
            return await _validate_jwt(
                id_token,
                self._jwks,
                issuer=self.issuer,
                audience=self.client_id,
                nonce=nonce,
                leeway=self.leeway,
                algorithms=self.id_token_algorithms,
            )
        except TokenError as e:
            raise AuthError(
                "The identity provider's answer could not be verified. Please start again.",
                log_message=f"ID token rejected: {e.reason}",
                status=400,
            ) from e
        except UnreachableError as e:
            raise AuthError(UNREACHABLE, log_message=str(e), status=503) from e

    async def identity(self, tokens: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        """Validated claims for these tokens: ID token claims, then userinfo on top.

        Presets for non-OIDC providers (GitHub) override this.
        """
        claims: dict[str, Any] = {}
        if self.uses_id_token:
            if "id_token" not in tokens:
                raise AuthError(
                    UNREACHABLE,
                    status=502,
                    log_message="token response has no id_token although 'openid' was requested",
                )
            claims = await self.validate_id_token(tokens["id_token"], nonce)
        return {**claims, **await self._userinfo(tokens, claims.get("sub"))}

    async def _userinfo(self, tokens: dict[str, Any], sub: Any) -> dict[str, Any]:
        url = (await self.metadata()).get("userinfo_endpoint")
        if not (self.use_userinfo and url):
            return {}
        info = await self._get_json(
            str(url), headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        if sub is not None and info.get("sub") != sub:
            # OIDC Core 5.3.2: a userinfo answer for another subject must not be used.
            raise AuthError(
                UNREACHABLE,
                status=502,
                log_message=f"userinfo sub {info.get('sub')!r} != ID token sub {sub!r}",
            )
        return info

    def token_state(self, tokens: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        expires_in = tokens.get("expires_in")
        return {
            "access_token": tokens["access_token"],
            "token_type": tokens.get("token_type", "Bearer"),
            # Providers may omit refresh/ID tokens on refresh: keep the ones we had.
            "refresh_token": tokens.get("refresh_token", previous.get("refresh_token")),
            "id_token": tokens.get("id_token", previous.get("id_token")),
            "scope": tokens.get("scope", previous.get("scope", " ".join(self.scope))),
            "expires_at": time.time() + float(expires_in) if expires_in else None,
        }

    def result_from_claims(self, claims: dict[str, Any], state: dict[str, Any]) -> AuthResult:
        name = claim_path(claims, self.username_claim)
        if not isinstance(name, str | int) or name == "":
            raise AuthError(
                "The identity provider did not say who you are. Ask the hub administrator.",
                log_message=f"no usable {self.username_claim!r} claim; claims present: "
                f"{sorted(claims)}: set {type(self).__name__}.username_claim",
                status=403,
            )
        groups = claim_path(claims, self.groups_claim) if self.groups_claim else None
        if isinstance(groups, str):
            groups = [groups]
        group_list = sorted({str(g) for g in groups}) if isinstance(groups, list) else []
        return AuthResult(
            name=str(name),
            # With admin_groups set, group membership decides both ways (so demotion works);
            # without, admin is left to the hub (None). is_admin() adds admin_users/groups.
            admin=False if self.admin_groups else None,
            groups=group_list,
            auth_state={**state, "claims": claims},
            user_info={"sub": claims.get("sub"), "email": claims.get("email")},
        )

    # ---- after login -------------------------------------------------------------------------
    async def refresh_user(self, result: AuthResult) -> AuthResult | bool:
        state = result.auth_state or {}
        expires_at = state.get("expires_at")
        if not state or expires_at is None:
            return True
        remaining = float(expires_at) - time.time()
        if remaining > self.refresh_before_expiry:
            return True
        if not state.get("refresh_token"):
            return remaining > 0
        try:
            tokens = await self.token_request(
                {"grant_type": "refresh_token", "refresh_token": state["refresh_token"]}
            )
            new_state = self.token_state(tokens, state)
            claims = dict(state.get("claims") or {})
            if not self.uses_id_token:
                claims.update(await self.identity(tokens, nonce=None))
            else:
                if tokens.get("id_token"):
                    fresh = await self.validate_id_token(tokens["id_token"], nonce=None)
                    if fresh.get("sub") != claims.get("sub"):
                        self.log.warning("refresh for %s returned a different subject", result.name)
                        return False
                    claims.update(fresh)
                claims.update(await self._userinfo(tokens, claims.get("sub")))
        except AuthError as e:
            self.log.warning("refreshing tokens of %s failed: %s", result.name, e.log_message)
            # IdP down but the token still works: keep the person logged in for now.
            return e.status == 503 and remaining > 0
        refreshed = self.result_from_claims(claims, new_state)
        refreshed.name = result.name
        return refreshed

    async def spawn_environment(self, result: AuthResult) -> dict[str, str]:
        token = (result.auth_state or {}).get("access_token")
        if self.access_token_env and token:
            return {self.access_token_env: str(token)}
        return {}

    def logout_url(self, hub_prefix: str) -> str | None:
        endpoint = (self._metadata or {}).get("end_session_endpoint")
        if not (self.enable_logout and endpoint):
            return None
        params = {"client_id": self.client_id}
        redirect = self.post_logout_redirect_url or (
            self.context.public_url.rstrip("/") + hub_prefix + "login"
            if self.context.public_url
            else ""
        )
        if redirect:
            params["post_logout_redirect_uri"] = redirect
        return str(endpoint) + ("&" if "?" in str(endpoint) else "?") + urlencode(params)
