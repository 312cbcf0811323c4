"""Pieces shared by the redirect-login handlers (OIDC, LTI 1.3).

These handlers run before the hub knows who the person is, so they render their own small error
page: a clear sentence for the person, a "start again" link, and a precise line in the log.
Anything unexpected becomes that page too (status 500 is never shown for a bad request).
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import urlparse

from tornado.web import RequestHandler

from amalthea.auth.base import AuthError, AuthResult

log = logging.getLogger("amalthea.auth")

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign-in problem</title></head>
<body><main><h1>Sign-in problem</h1><p id="auth-error">{message}</p>
<p><a href="{retry}">Start again</a></p></main></body></html>
"""


def safe_next_url(next_url: str, hub_prefix: str) -> str:
    """Keep only on-site absolute paths, so a login cannot redirect to another site."""
    parsed = urlparse(next_url)
    if not next_url or parsed.scheme or parsed.netloc or not next_url.startswith("/"):
        return ""
    if next_url.startswith("//") or "\\" in next_url:
        return ""
    return next_url


class AuthPageHandler(RequestHandler):
    """Base: holds the authenticator, renders AuthError pages, finishes logins through the hub."""

    def initialize(self, authenticator: Any) -> None:
        self.authenticator = authenticator

    @property
    def hub_prefix(self) -> str:
        return str(self.authenticator.context.hub_prefix)

    def hub_base_url(self) -> str:
        """The hub's public URL: configured, else as this request sees it."""
        public = str(self.authenticator.context.public_url or "").rstrip("/")
        return public or f"{self.request.protocol}://{self.request.host}"

    def render_auth_error(self, error: AuthError, retry: str = "") -> None:
        log.warning(
            "login failed (%s %s): %s", self.request.method, self.request.path, error.log_message
        )
        self.clear()
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            PAGE.format(
                message=html.escape(error.user_message),
                retry=html.escape(retry or self.hub_prefix + "login"),
            )
        )

    async def finish_login(self, result: AuthResult, next_url: str) -> None:
        complete = self.authenticator.context.complete_login
        if complete is None:
            raise AuthError(
                "This hub is not set up to finish this kind of login.",
                log_message="AuthContext.complete_login is not set: the hub did not wire redirect "
                "logins for this authenticator",
                status=500,
            )
        await complete(self, result, safe_next_url(next_url, self.hub_prefix))
