"""amalthea-proxy: an HTTP/WebSocket reverse proxy speaking configurable-http-proxy's API.

Modules: ``routes`` (pure route trie), ``targets`` (target URLs), ``http`` (client side,
hot path), ``upstream`` (target side + pool), ``api`` (CHP REST API), ``store`` (route
persistence), ``server`` (composition), ``cli``, ``client`` (what the hub uses).
"""

from .client import ProxyAPIClient, ProxyAPIError, ProxyProcess, start_proxy
from .config import ProxyConfig
from .routes import Route, RouteTable
from .server import ProxyServer

__all__ = [
    "ProxyAPIClient",
    "ProxyAPIError",
    "ProxyConfig",
    "ProxyProcess",
    "ProxyServer",
    "Route",
    "RouteTable",
    "start_proxy",
]
