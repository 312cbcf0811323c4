"""The client's address and scheme, taken only from headers our own proxy set.

Behind the proxy every request reaches the hub from the proxy's address, so the client's address
has to come from a header. Which header, and when to believe it, is a security decision: the
remote-user authenticator and the login throttle key on this address.

Rules (sans-IO in :func:`client_address`, applied per request by :class:`TrustedForwarding`):

- Forwarded headers are believed only when the TCP peer is one of ``proxy_networks`` (the
  proxy's address; loopback by default). From any other peer the peer address is the client.
- From a trusted peer, the client is the LAST ``X-Forwarded-For`` hop: the proxy appends the
  address it accepted the connection from, while every earlier hop is whatever the client wrote.
  Likewise the last ``X-Forwarded-Proto`` entry is the scheme the proxy saw.
- ``X-Real-Ip`` and ``X-Scheme`` are never read. Tornado's ``xheaders=True`` prefers
  ``X-Real-Ip`` over everything and trusts it from any peer; our proxy passes that header through
  unchanged, so a client could name any address (the forged-address bug this module closes).

Rejected: Tornado's ``trusted_downstream`` (it still lets ``X-Real-Ip`` win, and does not check
the peer at all). Limitation: any local process that can reach the hub's own port directly from
loopback is treated like the proxy; bind the hub to an address only the proxy can reach when that
matters (``hub_bind_url``), or narrow ``proxy_networks``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Iterable, Mapping

from tornado import httputil
from tornado.netutil import is_valid_ip

__all__ = ["DEFAULT_PROXY_NETWORKS", "TrustedForwarding", "client_address", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PROXY_NETWORKS = ("127.0.0.0/8", "::1/128")


def parse_networks(texts: Iterable[str]) -> list[IPNetwork]:
    """CIDR strings to networks; ValueError names the bad entry."""
    out = []
    for text in texts:
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError as e:
            raise ValueError(
                f"c.Amalthea.proxy_networks: {text!r} is not an address or CIDR network ({e})"
            ) from None
    return out


def _in(address: str, networks: Iterable[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # dual-stack sockets report ::ffff:127.0.0.1
    return any(ip in net for net in networks)


def _last(value: str | None) -> str:
    return value.split(",")[-1].strip() if value else ""


#: ``is_valid_ip`` asks getaddrinfo (a few µs); the proxy sends the same few addresses each time
_valid_ip = functools.lru_cache(maxsize=4096)(is_valid_ip)


def client_address(
    peer: str,
    scheme: str,
    headers: Mapping[str, str],
    networks: Iterable[IPNetwork],
    trusted: bool | None = None,
) -> tuple[str, str]:
    """(client ip, scheme) for a request from TCP ``peer`` with ``headers``. ``trusted``: the
    caller already knows whether ``peer`` is in ``networks``."""
    if not (_in(peer, networks) if trusted is None else trusted):
        return peer, scheme
    # HTTPHeaders joins repeated header lines with ",", so the last entry is the proxy's own
    forwarded = _last(headers.get("X-Forwarded-For"))
    proto = _last(headers.get("X-Forwarded-Proto")).lower()
    return (
        forwarded if forwarded and _valid_ip(forwarded) else peer,
        proto if proto in ("http", "https") else scheme,
    )


class TrustedForwarding(httputil.HTTPServerConnectionDelegate):
    """Wraps the Tornado application; use with ``HTTPServer(..., xheaders=False)``."""

    def __init__(
        self, app: httputil.HTTPServerConnectionDelegate, networks: Iterable[IPNetwork]
    ) -> None:
        self.app = app
        self.networks = list(networks)
        #: peer address -> in ``networks``? (parsing an address costs more than the request's
        #: other header work; the proxy is one or two peers)
        self._trusted: dict[str, bool] = {}

    def trusted(self, peer: str) -> bool:
        found = self._trusted.get(peer)
        if found is None:
            if len(self._trusted) >= 4096:
                self._trusted.clear()
            found = self._trusted[peer] = _in(peer, self.networks)
        return found

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        inner = self.app.start_request(server_conn, request_conn)
        return _Rewrite(inner, request_conn, self)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


class _Rewrite(httputil.HTTPMessageDelegate):
    """Sets the connection context's remote_ip/protocol for one request, then restores them
    (the context is shared by all requests of a keep-alive connection)."""

    def __init__(
        self,
        inner: httputil.HTTPMessageDelegate,
        conn: httputil.HTTPConnection,
        owner: TrustedForwarding,
    ) -> None:
        self.inner, self.owner = inner, owner
        self.context = getattr(conn, "context", None)
        self.saved: tuple[str, str] | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        ctx = self.context
        if ctx is not None and hasattr(ctx, "remote_ip"):
            self.saved = (ctx.remote_ip, ctx.protocol)
            owner = self.owner
            ctx.remote_ip, ctx.protocol = client_address(
                ctx.remote_ip, ctx.protocol, headers, owner.networks, owner.trusted(ctx.remote_ip)
            )
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()
        self._restore()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()
        self._restore()

    def _restore(self) -> None:
        if self.saved is not None and self.context is not None:
            self.context.remote_ip, self.context.protocol = self.saved
            self.saved = None
