"""The hub as OAuth2 provider for single-user servers and services (protocol §8.4)."""

from amalthea.hub.oauth.provider import OAuthError, OAuthProvider

__all__ = ["OAuthError", "OAuthProvider"]
