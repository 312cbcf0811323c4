"""Proxy settings, declared once; the CLI builds its flags from the field metadata."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ProxyConfig"]


def _opt(default: Any, help: str, flag: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass
class ProxyConfig:
    ip: str = _opt("", "Public-facing IP of the proxy (default: all interfaces)")
    port: int = _opt(8000, "Public-facing port of the proxy")
    api_ip: str = _opt("localhost", "IP of the REST API")
    api_port: int = _opt(0, "Port of the REST API (default: --port + 1)")
    default_target: str = _opt("", "Target for requests that match no route (stored as '/')")
    error_target: str = _opt("", "On errors, GET <error-target>/<code>?url=... and relay it")
    ssl_key: str = _opt("", "TLS private key file for the public port")
    ssl_cert: str = _opt("", "TLS certificate file for the public port")
    metrics_ip: str = _opt("", "IP of the Prometheus metrics endpoint")
    metrics_port: int = _opt(0, "Port of the Prometheus metrics endpoint (0: off)")
    log_level: str = _opt("info", "Log level (debug, info, warn, error)")
    timeout: int = _opt(
        0, "Milliseconds a request may go without traffic before it is dropped (0: never)"
    )
    proxy_timeout: int = _opt(
        0,
        "Milliseconds to wait for a target's response head after "
        "the last request byte (0: forever)",
    )
    keep_alive_timeout: int = _opt(5000, "Milliseconds an idle client connection is kept")
    host_routing: bool = _opt(False, "Route on Host: the first prefix segment is a hostname")
    store: str = _opt(
        "memory", "Route store: memory, file:PATH, sqlite:PATH or redis://host:port/db"
    )
    max_connections: int = _opt(10000, "Most simultaneous client connections; more get 503")
    max_header_size: int = _opt(65536, "Bytes of request line + headers before a 431")
    workers: int = _opt(
        1,
        "Processes serving the public port (SO_REUSEPORT); with more "
        "than 1, this process keeps the API, store and metrics",
    )
    access_log: bool = _opt(False, "Write a JSON access-log line per request to stderr")
    auth_token: str = field(default="", metadata={"help": None})

    @property
    def tls(self) -> bool:
        return bool(self.ssl_cert)

    def validate(self) -> None:
        """Fail at start, naming the flag and the bad value."""
        if bool(self.ssl_key) != bool(self.ssl_cert):
            raise ValueError("--ssl-key and --ssl-cert must be given together")
        if self.workers < 1:
            raise ValueError(f"--workers {self.workers}: must be >= 1")
        if self.max_connections < 1:
            raise ValueError(f"--max-connections {self.max_connections}: must be >= 1")
        for name in ("timeout", "proxy_timeout", "keep_alive_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0 milliseconds")

    @classmethod
    def cli_fields(cls) -> list[Any]:
        return [f for f in fields(cls) if f.metadata.get("help")]
