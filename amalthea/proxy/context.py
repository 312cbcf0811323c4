"""Shared state every connection of one proxy process sees (typed, no settings dict)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import ProxyConfig
from .metrics import Stats
from .routes import RouteTable

if TYPE_CHECKING:
    from .upstream import UpstreamPool

__all__ = ["ProxyContext"]


@dataclass(eq=False)
class ProxyContext:
    config: ProxyConfig
    table: RouteTable
    pool: UpstreamPool
    stats: Stats = field(default_factory=Stats)
    #: live client connections (ClientConnection), for limits, timeouts and shutdown
    connections: set[Any] = field(default_factory=set)
    #: coarse wall clock, refreshed by the sweeper; the hot path reads it instead of time()
    now: float = field(default_factory=time.time)
    #: public port as bytes, for X-Forwarded-Port
    port_bytes: bytes = b""
    proto_bytes: bytes = b"http"
