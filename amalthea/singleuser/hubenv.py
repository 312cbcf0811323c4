"""The hub's side of the contract, read once from the ``JUPYTERHUB_*`` environment.

A hub tells a single-user server everything through environment variables (the command
line carries nothing). This module turns them into one immutable :class:`HubEnvironment`
and refuses to start with a message naming each missing or malformed variable, because a
server that starts half-configured fails later in a way nobody can diagnose.

Pure: no I/O beyond the mapping it is given, so it is tested without processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

__all__ = ["HubEnvironment", "HubEnvironmentError", "read_hub_environment"]

DEFAULT_ACTIVITY_INTERVAL = 300.0


class HubEnvironmentError(Exception):
    """The environment does not describe a hub this server can talk to."""


@dataclass(frozen=True)
class HubEnvironment:
    """What the hub told us about itself and about this server."""

    api_url: str  # e.g. http://127.0.0.1:8081/hub/api (no trailing slash)
    api_token: str  # our server token; also the OAuth client secret
    client_id: str  # OAuth client id and the name of our auth cookie
    user: str  # the owner of this server
    server_name: str  # "" for the default server
    ip: str  # where to listen ("" = all interfaces)
    port: int  # 0 = let the OS pick a free port
    service_prefix: str  # the URL prefix we serve under, e.g. /user/alice/
    base_url: str  # the hub's base URL; the hub lives at base_url + "hub/"
    hub_host: str  # public origin of the hub, "" when redirects may be relative
    oauth_callback_url: str
    access_scopes: tuple[str, ...]  # holding any of these grants access to this server
    activity_url: str
    activity_interval: float
    default_url: str
    root_dir: str
    public_url: str
    cookie_host_prefix: bool
    allow_token_in_url: bool
    report_url: str  # AMALTHEA_REPORT_URL: where to POST our ip/port once listening
    debug: bool = False  # JUPYTERHUB_DEBUG=1: the hub wants debug logs
    sock: str = ""  # listen on this unix socket instead of ip:port (http+unix service URL)

    @property
    def hub_prefix(self) -> str:
        """URL path of the hub itself; clients hard-wire base_url + 'hub/'."""
        return self.base_url + "hub/"

    @property
    def cookie_name(self) -> str:
        return ("__Host-" if self.cookie_host_prefix else "") + self.client_id

    @property
    def cookie_path(self) -> str:
        # __Host- cookies must have path=/ or browsers drop them.
        return "/" if self.cookie_host_prefix else self.service_prefix

    @property
    def callback_path(self) -> str:
        """Path of the OAuth callback relative to our prefix (the route we must serve)."""
        path = urlsplit(self.oauth_callback_url).path
        if path.startswith(self.service_prefix):
            return path[len(self.service_prefix) :]
        return "oauth_callback"


def _with_slashes(path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    return path


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _parse_service_url(url: str) -> tuple[str, int, str, str]:
    """(ip, port, path, unix socket path) from JUPYTERHUB_SERVICE_URL."""
    parts = urlsplit(url)
    if parts.scheme == "http+unix":
        # JupyterHub 6 form: http+unix://<url-encoded socket path>/<prefix>
        return "", 0, parts.path or "/", unquote(parts.netloc)
    if parts.scheme not in {"http", "https"}:
        raise HubEnvironmentError(
            f"JUPYTERHUB_SERVICE_URL={url!r} is not an http(s) or http+unix URL; the hub "
            "should set it to where this server must listen, e.g. "
            "http://127.0.0.1:50999/user/alice/"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise HubEnvironmentError(f"JUPYTERHUB_SERVICE_URL={url!r} has a bad port") from exc
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", port, parts.path or "/", ""


def _parse_scopes(raw: str, user: str, server_name: str) -> tuple[str, ...]:
    if not raw:
        # Pre-3.0 hubs set neither variable; the owner's own access scopes are the sensible default.
        return (f"access:servers!server={user}/{server_name}", f"access:servers!user={user}")
    try:
        scopes = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HubEnvironmentError(
            f"JUPYTERHUB_OAUTH_ACCESS_SCOPES is not valid JSON ({exc}); expected a JSON list "
            'of scopes, e.g. ["access:servers!server=alice/"]'
        ) from exc
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise HubEnvironmentError(
            f"JUPYTERHUB_OAUTH_ACCESS_SCOPES={raw!r} must be a JSON list of strings"
        )
    return tuple(scopes)


def _parse_interval(raw: str | None) -> float:
    if not raw:
        return DEFAULT_ACTIVITY_INTERVAL
    try:
        value = float(raw)
    except ValueError as exc:
        raise HubEnvironmentError(
            f"JUPYTERHUB_ACTIVITY_INTERVAL={raw!r} is not a number of seconds"
        ) from exc
    if value <= 0:
        raise HubEnvironmentError(
            f"JUPYTERHUB_ACTIVITY_INTERVAL={raw!r} must be positive (default 300)"
        )
    return value


def read_hub_environment(env: Mapping[str, str] | None = None) -> HubEnvironment:
    """Build a :class:`HubEnvironment` from ``env`` (default: ``os.environ``).

    Raises :class:`HubEnvironmentError` naming every required variable that is missing.
    """
    source: Mapping[str, str] = os.environ if env is None else env

    def get(name: str) -> str:
        return source.get(name, "").strip()

    token = get("JUPYTERHUB_API_TOKEN") or get("JPY_API_TOKEN")
    required = {
        "JUPYTERHUB_SERVICE_URL": get("JUPYTERHUB_SERVICE_URL"),
        "JUPYTERHUB_API_URL": get("JUPYTERHUB_API_URL"),
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": get("JUPYTERHUB_CLIENT_ID"),
        "JUPYTERHUB_USER": get("JUPYTERHUB_USER"),
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise HubEnvironmentError(
            "amalthea-singleuser must be started by a JupyterHub-compatible hub, which sets "
            f"the JUPYTERHUB_* environment; missing or empty: {', '.join(missing)}"
        )
    ip, port, url_path, sock = _parse_service_url(required["JUPYTERHUB_SERVICE_URL"])
    user = required["JUPYTERHUB_USER"]
    server_name = source.get("JUPYTERHUB_SERVER_NAME", "")
    prefix = _with_slashes(get("JUPYTERHUB_SERVICE_PREFIX") or url_path)
    api_url = required["JUPYTERHUB_API_URL"].rstrip("/")
    scopes_raw = get("JUPYTERHUB_OAUTH_ACCESS_SCOPES") or get("JUPYTERHUB_OAUTH_SCOPES")
    return HubEnvironment(
        api_url=api_url,
        api_token=token,
        client_id=required["JUPYTERHUB_CLIENT_ID"],
        user=user,
        server_name=server_name,
        ip=ip,
        port=port,
        service_prefix=prefix,
        base_url=_with_slashes(get("JUPYTERHUB_BASE_URL") or "/"),
        hub_host=get("JUPYTERHUB_HOST").rstrip("/"),
        oauth_callback_url=get("JUPYTERHUB_OAUTH_CALLBACK_URL") or prefix + "oauth_callback",
        access_scopes=_parse_scopes(scopes_raw, user, server_name),
        activity_url=get("JUPYTERHUB_ACTIVITY_URL")
        or f"{api_url}/users/{quote(user, safe='@~')}/activity",
        activity_interval=_parse_interval(source.get("JUPYTERHUB_ACTIVITY_INTERVAL")),
        default_url=get("JUPYTERHUB_DEFAULT_URL") or "/lab",
        root_dir=os.path.expanduser(root_dir) if (root_dir := get("JUPYTERHUB_ROOT_DIR")) else "",
        public_url=get("JUPYTERHUB_PUBLIC_URL"),
        cookie_host_prefix=_truthy(get("JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED")),
        allow_token_in_url=_truthy(get("JUPYTERHUB_ALLOW_TOKEN_IN_URL")),
        report_url=get("AMALTHEA_REPORT_URL"),
        debug=_truthy(get("JUPYTERHUB_DEBUG")),
        sock=sock,
    )
