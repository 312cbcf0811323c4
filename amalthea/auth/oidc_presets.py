"""Presets of the OIDC authenticator for common identity providers.

Each preset only fills in URLs, scopes and claim names (all still overridable); the flow and
validation are :class:`~amalthea.auth.oidc.OIDCAuthenticator`'s. GitHub is plain OAuth2 (no ID
token, no discovery): its identity comes from the REST API, and organisation/team membership
becomes groups (``org`` and ``org:team``), usable in ``allowed_organizations``.
"""

from __future__ import annotations

from typing import Any

import httpx
from traitlets import Set, Unicode, default

from amalthea.auth.base import AuthError, AuthResult
from amalthea.auth.oidc import UNREACHABLE, OIDCAuthenticator


class GitHubAuthenticator(OIDCAuthenticator):
    """GitHub (or GitHub Enterprise) OAuth app."""

    display_name = "Sign in with GitHub"

    github_url = Unicode("https://github.com", help="GitHub web URL (Enterprise: your host).").tag(
        config=True
    )
    github_api = Unicode(
        "https://api.github.com", help="GitHub REST API URL (Enterprise: https://HOST/api/v3)."
    ).tag(config=True)
    allowed_organizations = Set(
        Unicode(),
        help="Members of these organisations ('org') or teams ('org:team') may log in. Needs the read:org scope.",
    ).tag(config=True)

    @default("authorize_url")
    def _authorize_url(self) -> str:
        return self.github_url.rstrip("/") + "/login/oauth/authorize"

    @default("token_url")
    def _token_url(self) -> str:
        return self.github_url.rstrip("/") + "/login/oauth/access_token"

    @default("scope")
    def _scope(self) -> list[str]:
        return ["read:user", "user:email", "read:org"]

    @default("username_claim")
    def _username_claim(self) -> str:
        return "login"

    @default("token_auth_method")
    def _token_auth_method(self) -> str:
        return "client_secret_post"

    async def identity(self, tokens: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        """The /user profile plus ``groups``: every org login and ``org:team`` slug."""
        headers = {
            "Authorization": f"Bearer {tokens['access_token']}",
            "Accept": "application/vnd.github+json",
        }
        api = self.github_api.rstrip("/")
        user = await self._get_json(f"{api}/user", headers=headers)
        groups: set[str] = set()
        if "read:org" in self.scope or self.allowed_organizations:
            orgs = await self._get_list(f"{api}/user/orgs", headers)
            teams = await self._get_list(f"{api}/user/teams", headers)
            groups |= {str(o["login"]) for o in orgs if "login" in o}
            groups |= {
                f"{t['organization']['login']}:{t['slug']}"
                for t in teams
                if "slug" in t and isinstance(t.get("organization"), dict)
            }
        return {**user, "groups": sorted(groups)}

    async def _get_list(self, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        # 100 per page covers nearly everyone; more orgs than that are not looked at.
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout) as client:
                response = await client.get(url, headers=headers, params={"per_page": "100"})
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise AuthError(UNREACHABLE, log_message=f"GET {url} failed: {e!r}", status=503) from e
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

    def check_allowed(self, result: AuthResult) -> bool:
        if result.name in self.blocked_users:
            return False
        if super().check_allowed(result):
            return True
        return bool(self.allowed_organizations & set(result.groups or []))


class GitLabAuthenticator(OIDCAuthenticator):
    """GitLab (gitlab.com or self-managed) as an OpenID provider."""

    display_name = "Sign in with GitLab"
    gitlab_url = Unicode("https://gitlab.com", help="GitLab URL.").tag(config=True)

    @default("issuer")
    def _issuer(self) -> str:
        return self.gitlab_url.rstrip("/")

    @default("username_claim")
    def _username_claim(self) -> str:
        return "nickname"

    @default("groups_claim")
    def _groups_claim(self) -> str:
        return "groups"  # full group paths, from userinfo


class GoogleAuthenticator(OIDCAuthenticator):
    """Google accounts; ``hosted_domain`` limits logins to one Google Workspace domain."""

    display_name = "Sign in with Google"
    hosted_domain = Unicode(
        "", help="Only accept accounts of this Workspace domain (hd claim)."
    ).tag(config=True)

    @default("issuer")
    def _issuer(self) -> str:
        return "https://accounts.google.com"

    @default("username_claim")
    def _username_claim(self) -> str:
        return "email"

    @default("groups_claim")
    def _groups_claim(self) -> str:
        return ""  # Google's ID token carries no groups

    @default("extra_authorize_params")
    def _extra(self) -> dict[str, str]:
        return {"hd": self.hosted_domain} if self.hosted_domain else {}

    def result_from_claims(self, claims: dict[str, Any], state: dict[str, Any]) -> AuthResult:
        if self.hosted_domain and claims.get("hd") != self.hosted_domain:
            raise AuthError(
                f"Only {self.hosted_domain} accounts may use this hub.",
                log_message=f"Google account from domain {claims.get('hd')!r} refused",
            )
        return super().result_from_claims(claims, state)


class AzureADAuthenticator(OIDCAuthenticator):
    """Microsoft Entra ID (Azure AD), v2.0 endpoints of one tenant."""

    display_name = "Sign in with Microsoft"
    tenant_id = Unicode("", help="Directory (tenant) id.").tag(config=True)

    @default("issuer")
    def _issuer(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"

    @default("groups_claim")
    def _groups_claim(self) -> str:
        return "groups"  # group object ids; enable "groups" in the app's token configuration

    async def startup(self) -> None:
        if not self.tenant_id and self.issuer.startswith("https://login.microsoftonline.com//"):
            raise ValueError("AzureADAuthenticator.tenant_id is not set.")
        await super().startup()


class KeycloakAuthenticator(OIDCAuthenticator):
    """Keycloak realm; groups need a "Group Membership" mapper named ``groups`` on the client."""

    display_name = "Sign in with Keycloak"
    keycloak_url = Unicode("", help="Keycloak base URL, e.g. https://sso.example.org").tag(
        config=True
    )
    realm = Unicode("", help="Keycloak realm name.").tag(config=True)

    @default("issuer")
    def _issuer(self) -> str:
        return f"{self.keycloak_url.rstrip('/')}/realms/{self.realm}" if self.keycloak_url else ""
