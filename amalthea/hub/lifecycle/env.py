"""The JUPYTERHUB_* environment a single-user server gets (jupyterhub-protocol.md §8.1).

Pure: everything comes in as arguments, so the contract is testable without a hub.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from amalthea.hub import rbac

__all__ = ["HubURLs", "client_id", "server_env", "server_prefix"]


@dataclass(frozen=True)
class HubURLs:
    base_url: str = "/"  # JupyterHub base_url; the hub lives at base_url + "hub/"
    api_url: str = "http://127.0.0.1:8081/hub/api"  # as the servers reach it
    public_host: str = ""  # "https://hub.example" or "" for relative redirects
    cookie_host_prefix: bool = False


def q(name: str) -> str:
    return quote(name, safe="@~")


def server_prefix(base_url: str, username: str, server_name: str) -> str:
    prefix = f"{base_url}user/{q(username)}/"
    return prefix + (f"{q(server_name)}/" if server_name else "")


def client_id(username: str, server_name: str) -> str:
    cid = f"jupyterhub-user-{q(username)}"
    return cid + (f"-{q(server_name)}" if server_name else "")


def server_env(
    urls: HubURLs,
    username: str,
    server_name: str,
    token: str,
    ip: str,
    port: int,
    client_allowed_scopes: list[str] | None = None,
    debug: bool = False,
) -> dict[str, str]:
    prefix = server_prefix(urls.base_url, username, server_name)
    access = json.dumps(rbac.server_access_scopes(username, server_name))
    host = f"[{ip}]" if ":" in ip else ip
    public_url = urls.public_host + prefix if urls.public_host else ""
    env = {
        "JUPYTERHUB_API_TOKEN": token,
        "JPY_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": client_id(username, server_name),
        "JUPYTERHUB_HOST": urls.public_host,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": access,
        "JUPYTERHUB_OAUTH_SCOPES": access,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps(client_allowed_scopes or []),
        "JUPYTERHUB_USER": username,
        "JUPYTERHUB_SERVER_NAME": server_name,
        "JUPYTERHUB_API_URL": urls.api_url,
        "JUPYTERHUB_ACTIVITY_URL": f"{urls.api_url}/users/{q(username)}/activity",
        "JUPYTERHUB_BASE_URL": urls.base_url,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://{host}:{port}{prefix}",
        "JUPYTERHUB_PUBLIC_URL": public_url,
        "JUPYTERHUB_PUBLIC_HUB_URL": f"{urls.public_host}{urls.base_url}hub/"
        if urls.public_host
        else "",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "1" if urls.cookie_host_prefix else "0",
    }
    if debug:
        env["JUPYTERHUB_DEBUG"] = "1"
    return env
