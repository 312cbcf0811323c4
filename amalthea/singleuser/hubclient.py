"""Calls from the single-user server to the hub's REST API.

Error hierarchy (what callers map to HTTP statuses)::

    HubError
    ├── HubUnavailable      hub unreachable or answered 5xx   -> 502 to the browser
    ├── HubRejected         hub answered an unexpected 4xx    -> 500 (a contract bug)
    └── OAuthExchangeError  the code/verifier was refused     -> 403 (log in again)

The hub answers 403 for an invalid token on ``/user``; that is "not authenticated", not an
error, so :meth:`HubClient.identify` returns ``None`` for it.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

__all__ = [
    "HubClient",
    "HubError",
    "HubRejected",
    "HubUnavailable",
    "OAuthExchangeError",
    "check_in",
]

log = logging.getLogger(__name__)


class HubError(Exception):
    """A call to the hub failed."""


class HubUnavailable(HubError):
    """The hub could not be reached or answered with a server error."""


class HubRejected(HubError):
    """The hub answered with a 4xx we did not expect; likely a protocol mismatch."""


class OAuthExchangeError(HubError):
    """The hub refused to exchange an authorization code for a token."""


class HubClient:
    """Async client for the few hub endpoints a single-user server uses."""

    def __init__(self, api_url: str, api_token: str, timeout: float = 20.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.timeout = timeout

    async def _fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        token: str | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> HTTPResponse:
        headers = {"Authorization": f"token {token or self.api_token}"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=body,
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            return await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            raise HubUnavailable(f"cannot reach the hub at {url}: {exc}") from exc

    @staticmethod
    def _raise_for(response: HTTPResponse, what: str) -> None:
        if response.code >= 500 or response.code == 599:
            raise HubUnavailable(f"{what}: hub answered {response.code} {response.reason}")
        if response.code >= 400:
            raise HubRejected(f"{what}: hub answered {response.code} {response.reason}")

    async def identify(self, token: str) -> dict[str, Any] | None:
        """The hub's model of whoever owns ``token``, or ``None`` if the token is invalid."""
        response = await self._fetch(f"{self.api_url}/user", token=token)
        if response.code in (401, 403):
            return None
        self._raise_for(response, "identifying a token")
        model: dict[str, Any] = json.loads(response.body)
        return model

    async def user_groups(self, name: str) -> list[str]:
        """Groups of user ``name`` (our server token may read the owner's groups)."""
        url = f"{self.api_url}/users/{quote(name, safe='@~')}"
        response = await self._fetch(url)
        if response.code in (403, 404):
            return []
        self._raise_for(response, f"reading the groups of {name}")
        groups = json.loads(response.body).get("groups") or []
        return [str(g) for g in groups]

    async def exchange_code(
        self, *, client_id: str, code: str, redirect_uri: str, code_verifier: str
    ) -> str:
        """Trade an authorization code for an access token (RFC 6749 §4.1.3 + PKCE)."""
        form = urlencode(
            {
                "client_id": client_id,
                "client_secret": self.api_token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )
        response = await self._fetch(
            f"{self.api_url}/oauth2/token",
            method="POST",
            body=form.encode(),
            content_type="application/x-www-form-urlencoded",
        )
        if 400 <= response.code < 500:
            try:
                reason = json.loads(response.body).get("error", response.reason)
            except (ValueError, AttributeError):
                reason = response.reason
            raise OAuthExchangeError(f"the hub refused the authorization code: {reason}")
        self._raise_for(response, "exchanging an OAuth code")
        token = json.loads(response.body).get("access_token")
        if not isinstance(token, str) or not token:
            raise HubRejected("the hub's token response has no access_token")
        return token

    async def post_json(self, url: str, payload: dict[str, Any]) -> None:
        """POST ``payload`` with our server token; raises :class:`HubError` on failure."""
        response = await self._fetch(url, method="POST", body=json.dumps(payload).encode())
        self._raise_for(response, f"POST {url}")


def check_in(
    api_url: str,
    delays: Sequence[float] = (2, 4, 8, 16, 16),
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> str | None:
    """Make sure the hub is reachable before we start serving; return its version.

    Blocking on purpose: it runs once, before the event loop serves anything, and a server
    whose hub is unreachable should exit rather than accept users it cannot authenticate.
    Raises :class:`HubUnavailable` after the last attempt fails.
    """
    last_error: Exception | None = None
    for attempt, delay in enumerate([0.0, *delays]):
        if delay:
            logger.warning(
                "Hub at %s not reachable (%s); retrying in %ss", api_url, last_error, delay
            )
            time.sleep(delay)
        try:
            # Only http(s) URLs come from the hub's environment contract.
            with urllib.request.urlopen(api_url, timeout=10) as response:  # noqa: S310
                version: str | None = response.headers.get("X-JupyterHub-Version")
                return version
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                # The hub is there; a 4xx on the API root only means an odd version.
                return exc.headers.get("X-JupyterHub-Version")
            last_error = exc
        except OSError as exc:
            last_error = exc
        logger.debug("check-in attempt %d failed: %s", attempt + 1, last_error)
    raise HubUnavailable(
        f"the hub API at {api_url} (JUPYTERHUB_API_URL) did not answer after "
        f"{len(delays) + 1} attempts: {last_error}. Is the hub running and reachable from here?"
    )
