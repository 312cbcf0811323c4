"""Client address from forwarded headers: only the proxy's last hop, only from the proxy."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from amalthea.hub.security.forwarded import DEFAULT_PROXY_NETWORKS, client_address, parse_networks

NETS = parse_networks(DEFAULT_PROXY_NETWORKS)


def headers(**kw: str) -> HTTPHeaders:
    h = HTTPHeaders()
    for k, v in kw.items():
        h.add(k.replace("_", "-"), v)
    return h


@pytest.mark.parametrize(
    ("peer", "hdrs", "expected"),
    [
        ("127.0.0.1", {"X_Forwarded_For": "10.0.0.9"}, ("10.0.0.9", "http")),
        ("127.0.0.1", {"X_Forwarded_For": "10.66.0.1, 10.0.0.9"}, ("10.0.0.9", "http")),
        ("127.0.0.1", {"X_Real_Ip": "10.66.0.1"}, ("127.0.0.1", "http")),
        ("127.0.0.1", {"X_Real_Ip": "10.66.0.1", "X_Forwarded_For": "10.0.0.9"},
         ("10.0.0.9", "http")),
        ("::ffff:127.0.0.1", {"X_Forwarded_For": "10.0.0.9"}, ("10.0.0.9", "http")),
        ("127.0.0.1", {"X_Forwarded_For": "not-an-ip"}, ("127.0.0.1", "http")),
        ("127.0.0.1", {"X_Forwarded_Proto": "javascript,https"}, ("127.0.0.1", "https")),
        ("127.0.0.1", {"X_Forwarded_Proto": "https,gopher"}, ("127.0.0.1", "http")),
        ("10.1.2.3", {"X_Forwarded_For": "127.0.0.1", "X_Forwarded_Proto": "https"},
         ("10.1.2.3", "http")),
    ],
)  # fmt: skip
def test_client_address(peer, hdrs, expected):
    assert client_address(peer, "http", headers(**hdrs), NETS) == expected


def test_repeated_header_lines_use_the_last():
    h = HTTPHeaders()
    h.add("X-Forwarded-For", "10.66.0.1")  # written by the client
    h.add("X-Forwarded-For", "10.0.0.9")  # appended by the proxy
    assert client_address("127.0.0.1", "http", h, NETS)[0] == "10.0.0.9"


def test_bad_network_is_a_clear_error():
    with pytest.raises(ValueError, match="proxy_networks: 'nonsense'"):
        parse_networks(["nonsense"])
