"""``remote-user``: trust a username header set by a front web server (Shibboleth, mellon, SAML).

The front server authenticates the person and forwards the request with, e.g.,
``X-Remote-User: alice``. Anyone who can reach the hub directly could send that header too,
so it is believed ONLY when the TCP peer (``LoginRequest.remote_ip``) is in
``trusted_proxies``; from anywhere else the login is refused and logged.

Two consequences for deployment, stated here because getting them wrong is silent:
- the hub must see the real peer address: do not let it take ``remote_ip`` from
  ``X-Forwarded-For`` supplied by untrusted clients;
- the front server must drop any copy of the header the browser sent. Header names are
  matched case-insensitively but ``-`` and ``_`` are NOT treated alike, so a client's
  ``X_Remote_User`` can never pass for ``X-Remote-User`` (the classic underscore smuggling).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from traitlets import List, TraitError, Unicode, validate

from amalthea.auth._refusals import logs_refusals
from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest

__all__ = ["RemoteUserAuthenticator"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RemoteUserAuthenticator(Authenticator):
    login_kind = "header"

    header_name = Unicode(
        "X-Remote-User",
        help="Request header carrying the authenticated username (e.g. 'REMOTE_USER' if the "
        "front server forwards it under that name). Matched case-insensitively.",
    ).tag(config=True)
    groups_header = Unicode(
        "",
        help="Optional header with the person's groups (e.g. 'X-Remote-Groups'); empty means "
        "this authenticator does not manage groups.",
    ).tag(config=True)
    groups_separator = Unicode(
        ";", help="Separator between groups in groups_header (Shibboleth uses ';')."
    ).tag(config=True)
    trusted_proxies = List(
        Unicode(),
        ["127.0.0.1/32"],
        help="Addresses (CIDR) of the front servers allowed to set header_name. Requests from "
        "any other address are refused.",
    ).tag(config=True)

    @validate("trusted_proxies")
    def _parse_networks(self, proposal: dict[str, Any]) -> list[str]:
        for text in proposal["value"]:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError as e:
                raise TraitError(
                    f"RemoteUserAuthenticator.trusted_proxies: {text!r} is not an address or "
                    f"CIDR network ({e})"
                ) from e
        return list(proposal["value"])

    def networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(text, strict=False) for text in self.trusted_proxies]

    async def startup(self) -> None:
        if not self.trusted_proxies:
            raise ValueError(
                "RemoteUserAuthenticator.trusted_proxies is empty, so no front server may set "
                f"{self.header_name!r} and nobody can log in. List the proxy's address, e.g. "
                "['127.0.0.1/32']."
            )
        if not self.header_name:
            raise ValueError("RemoteUserAuthenticator.header_name must not be empty.")

    def is_trusted(self, remote_ip: str) -> bool:
        try:
            address = ipaddress.ip_address(remote_ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # a dual-stack socket reports ::ffff:127.0.0.1
        return any(address in net for net in self.networks())

    @logs_refusals
    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        if not self.is_trusted(request.remote_ip):
            raise AuthError(
                "Log in through the organisation's login page, not directly.",
                log_message=f"remote-user login refused: peer {request.remote_ip or '(unknown)'} "
                f"is not in trusted_proxies {self.trusted_proxies}",
            )
        name = _header(request.headers, self.header_name).strip()
        if not name:
            raise AuthError(
                "The front web server did not say who you are. Ask the hub's administrator.",
                log_message=f"remote-user login from trusted proxy {request.remote_ip} without "
                f"the {self.header_name!r} header: check the front server's configuration",
                status=401,
            )
        groups = None
        if self.groups_header:
            raw = _header(request.headers, self.groups_header)
            groups = sorted({g.strip() for g in raw.split(self.groups_separator) if g.strip()})
        admin = False if self.admin_groups and groups is not None else None
        return AuthResult(name=name, groups=groups, admin=admin)


def _header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive lookup that works for plain dicts and Tornado's HTTPHeaders alike."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""
