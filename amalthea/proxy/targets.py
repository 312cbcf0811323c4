"""Route targets: where a route sends its traffic.

Accepted forms (see README, "Targets"):

* ``http://host:port[/path]`` and ``https://host:port[/path]`` (port defaults 80/443);
* ``http+unix://<url-encoded socket path>[/path]`` and ``unix+http://...`` (CHP 5.3 syntax,
  e.g. ``http+unix://%2Frun%2Fjupyter.sock``);
* ``unix:/absolute/socket/path`` (Amalthea shorthand, no path prefix).

A target path is prepended to the request path (CHP's default ``prependPath``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

__all__ = ["Target", "parse_target"]


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    #: connection-pool key: ("tcp", host, port, tls) or ("unix", path)
    key: tuple[object, ...]
    host: str = ""
    port: int = 0
    tls: bool = False
    unix_path: str = ""
    #: bytes prepended to the forwarded request path ("" for none)
    path_prefix: bytes = b""


def parse_target(url: object) -> Target:
    """Parse a target URL; raise ``ValueError`` naming the bad value and the accepted forms."""
    if not isinstance(url, str) or not url:
        raise ValueError("Must specify 'target' as string")
    return _parse(url)


@lru_cache(maxsize=4096)
def _parse(url: str) -> Target:
    if url.startswith("unix:/"):
        return Target(url, ("unix", url[5:]), unix_path=url[5:])
    parts = urlsplit(url)
    prefix = parts.path.rstrip("/").encode()
    if parts.scheme in ("http+unix", "unix+http"):
        sock = unquote(parts.netloc)
        if not sock.startswith("/"):
            raise ValueError(
                f"Bad unix-socket target {url!r}: host part must be an encoded "
                "absolute path, e.g. http+unix://%2Frun%2Fapp.sock"
            )
        return Target(url, ("unix", sock), unix_path=sock, path_prefix=prefix)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ValueError(
            f"Bad target {url!r}: expected http://host:port, https://host:port, "
            "http+unix://%2Fpath%2Fto.sock or unix:/path/to.sock"
        )
    tls = parts.scheme in ("https", "wss")
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as e:
        raise ValueError(f"Bad target {url!r}: {e}") from e
    host = parts.hostname
    return Target(url, ("tcp", host, port, tls), host=host, port=port, tls=tls, path_prefix=prefix)
