"""How a client's request is rewritten for the target (pure: no I/O).

Hop-by-hop headers (RFC 9110 §7.6.1, plus any the client lists in ``Connection``) describe one
connection and are never forwarded as received; the proxy writes its own ``Connection``/
``Upgrade``/``Transfer-Encoding`` for the target leg. ``X-Forwarded-*`` values the client sent
are kept and ours appended, as configurable-http-proxy does; whoever reads them must trust only
the last hop (the hub does: amalthea/hub/security/forwarded.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .http import Exchange
    from .routes import Route

__all__ = ["HOP_BY_HOP", "XFWD", "request_head"]

# Headers that describe one connection, not the message; never forwarded as received.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
XFWD = frozenset(
    {b"x-forwarded-for", b"x-forwarded-port", b"x-forwarded-proto", b"x-forwarded-host"}
)


def request_head(
    ex: Exchange, route: Route, client_ip: bytes, port_bytes: bytes, proto_bytes: bytes
) -> bytes:
    """The request head sent to the target: same method, path (behind the target's own prefix)
    and end-to-end headers; Host kept; ``X-Forwarded-*`` appended to as CHP does."""
    target = route.target
    url = target.path_prefix + ex.url if target.path_prefix else ex.url
    version = b" HTTP/1.0\r\n" if ex.http10 else b" HTTP/1.1\r\n"
    lines = ex.headers
    if ex.conn_tokens.strip(b", ") not in (b"", b"close", b"keep-alive", b"upgrade"):
        lines = _drop_connection_listed(ex)
    xf = ex.xfwd or {}
    old = xf.get(b"x-forwarded-for")
    xff = old + b"," + client_ip if old else client_ip
    old = xf.get(b"x-forwarded-port")
    xfport = old + b"," + port_bytes if old else port_bytes
    old = xf.get(b"x-forwarded-proto")
    xfproto = old + b"," + proto_bytes if old else proto_bytes
    extra = [
        b"Host: ",
        ex.host,
        b"\r\nX-Forwarded-For: ",
        xff,
        b"\r\nX-Forwarded-Port: ",
        xfport,
        b"\r\nX-Forwarded-Proto: ",
        xfproto,
        b"\r\nX-Forwarded-Host: ",
        xf.get(b"x-forwarded-host") or ex.host,
        b"\r\n",
    ]
    if ex.upgrade:
        extra += (b"Connection: Upgrade\r\nUpgrade: ", ex.upgrade_value, b"\r\n")
    elif ex.http10:
        extra.append(b"Connection: close\r\n")
    if ex.chunked:
        extra.append(b"Transfer-Encoding: chunked\r\n")
    return b"".join((ex.method, b" ", url, version, *lines, *extra, b"\r\n"))


def _drop_connection_listed(ex: Exchange) -> list[bytes]:
    """Headers minus those the client named in ``Connection`` (they are hop-by-hop too)."""
    listed = {t.strip() for t in ex.conn_tokens.split(b",") if t.strip()}
    out: list[bytes] = []
    h = ex.headers
    for i in range(0, len(h), 4):
        if h[i].lower() not in listed:
            out += h[i : i + 4]
    return out
