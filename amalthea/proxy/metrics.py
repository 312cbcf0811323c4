"""Counters kept as plain ints on the hot path, exposed as Prometheus metrics on scrape.

Names follow CHP's (``requests_web``, ``requests_ws``, ``requests_proxy{status}`` ...) with
an ``amalthea_proxy_`` prefix; process metrics come from prometheus_client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stats", "render_metrics"]


@dataclass(eq=False)
class Stats:
    requests_web: int = 0
    requests_ws: int = 0
    rejected_connections: int = 0
    bad_requests: int = 0
    upstream_errors: int = 0
    #: status code -> count of answers sent to clients for proxied requests
    status: Counter[int] = field(default_factory=Counter)
    api: Counter[tuple[str, int]] = field(default_factory=Counter)

    _PLAIN = (
        "requests_web",
        "requests_ws",
        "rejected_connections",
        "bad_requests",
        "upstream_errors",
    )

    def snapshot(self) -> dict[str, Any]:
        """The proxying counters as JSON (a worker sends this to its supervisor)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in self._PLAIN}
        out["status"] = {str(k): v for k, v in self.status.items()}
        return out

    def add(self, snap: dict[str, Any]) -> None:
        for k in self._PLAIN:
            setattr(self, k, getattr(self, k) + snap.get(k, 0))
        for code, n in snap.get("status", {}).items():
            self.status[int(code)] += n


class _Collector:
    def __init__(self, stats: Stats, gauges: Callable[[], dict[str, float]]) -> None:
        self.stats = stats
        self.gauges = gauges

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.stats
        p = "amalthea_proxy_"
        yield CounterMetricFamily(p + "requests_web", "HTTP requests proxied", value=s.requests_web)
        yield CounterMetricFamily(
            p + "requests_ws", "Upgrade requests proxied", value=s.requests_ws
        )
        yield CounterMetricFamily(
            p + "rejected_connections",
            "Connections refused over --max-connections",
            value=s.rejected_connections,
        )
        yield CounterMetricFamily(
            p + "bad_requests", "Requests answered 400/431 as malformed", value=s.bad_requests
        )
        yield CounterMetricFamily(
            p + "upstream_errors", "Targets that failed or timed out", value=s.upstream_errors
        )
        c = CounterMetricFamily(
            p + "requests_proxy", "Answers to proxied requests", labels=["status"]
        )
        for code, n in sorted(s.status.items()):
            c.add_metric([str(code)], n)
        yield c
        c = CounterMetricFamily(
            p + "requests_api", "REST API requests", labels=["method", "status"]
        )
        for (method, code), n in sorted(s.api.items()):
            c.add_metric([method, str(code)], n)
        yield c
        for name, value in self.gauges().items():
            yield GaugeMetricFamily(p + name, name.replace("_", " "), value=value)


def render_metrics(stats: Stats, gauges: Callable[[], dict[str, float]]) -> bytes:
    """Prometheus text exposition of our counters plus process metrics."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    registry = CollectorRegistry()
    registry.register(_Collector(stats, gauges))
    ProcessCollector(registry=registry)
    return generate_latest(registry)
