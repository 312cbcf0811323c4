"""The route table: a trie keyed by path segments (sans-IO, no asyncio).

Invariants:

* A route prefix is stored in canonical form: percent-decoded, one leading ``/``, no trailing
  ``/``, no empty segments (``/user/a%20b/`` -> ``/user/a b``); the root route is ``/``.
* Lookup walks at most one trie node per request path segment, so its cost depends on the
  depth of the path and never on how many routes exist (CHP's trie has the same property).
* The most specific prefix wins: ``/user/alice/lab`` beats ``/user/alice`` beats ``/``.

Request paths are split by :func:`request_segments`, which implements the path policy (see
``README.md``, "Path policy"): segments are split on literal ``/`` only, empty segments are
ignored, each segment is percent-decoded on its own (so ``%2F`` can never create a segment
boundary), and a segment that is ``.`` or ``..`` after decoding rejects the request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from .targets import Target, parse_target

__all__ = [
    "BadPath",
    "Route",
    "RouteTable",
    "canonical_prefix",
    "format_timestamp",
    "request_segments",
]


class BadPath(ValueError):
    """The request path contains a dot segment (literal or percent-encoded); answered with 400."""


def canonical_prefix(prefix: str) -> str:
    """Normalise an API prefix the way CHP does: decode, add leading ``/``, drop trailing ``/``."""
    segments = [s for s in unquote(prefix).split("/") if s]
    return "/" + "/".join(segments)


def request_segments(raw_path: bytes) -> list[str]:
    """Split a raw request path (no query) into decoded routing segments.

    Raises :class:`BadPath` for ``.``/``..`` segments, including encoded forms such as
    ``%2e%2e``: browsers never send them, and refusing them is the simplest way to be sure
    ``/user/alice/../bob/`` can reach neither bob's route nor confuse alice's server.
    """
    out: list[str] = []
    for seg in raw_path.split(b"/"):
        if not seg:
            continue
        if b"%" in seg:
            text = unquote_to_bytes(seg).decode("utf-8", "surrogateescape")
        else:
            text = seg.decode("utf-8", "surrogateescape")
        if text == "." or text == "..":
            raise BadPath(raw_path.decode("latin-1"))
        out.append(text)
    return out


def format_timestamp(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as CHP returns ``last_activity``."""
    secs = int(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + (
        f".{int((epoch - secs) * 1000):03d}Z"
    )


@dataclass(eq=False)
class Route:
    """One route: the prefix, the whole JSON the API received, and the parsed target.

    ``last_activity`` is epoch seconds; the proxy assigns it from a coarse clock on traffic,
    which is one attribute store per event and never touches the disk.
    """

    prefix: str
    data: dict[str, Any]
    target: Target
    last_activity: float = field(default_factory=time.time)
    # GET /api/routes serialises every route; cache the parts that rarely change.
    _json_head: str = field(default="", init=False, repr=False)
    _ts: float = field(default=-1.0, init=False, repr=False)
    _ts_text: str = field(default="", init=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        """The route as ``GET /api/routes`` shows it: stored data + target + last_activity."""
        out = dict(self.data)
        out["target"] = self.target.url
        out["last_activity"] = format_timestamp(self.last_activity)
        return out

    def json_item(self) -> str:
        """``"prefix": {...}`` as in the GET /api/routes object, from cached pieces."""
        if not self._json_head:
            body = dict(self.data)
            body["target"] = self.target.url
            self._json_head = json.dumps(self.prefix) + ": " + json.dumps(body)[:-1]
        ts = self.last_activity
        if ts != self._ts:
            self._ts_text = format_timestamp(ts)
            self._ts = ts
        return f'{self._json_head}, "last_activity": "{self._ts_text}"}}'


class _Node:
    __slots__ = ("children", "route")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.route: Route | None = None


class RouteTable:
    """Prefix -> :class:`Route`, with longest-prefix lookup by path segments."""

    def __init__(self) -> None:
        self._root = _Node()
        self._by_prefix: dict[str, Route] = {}
        #: called as listener(prefix, route) after an add and (prefix, None) after a removal
        self.listeners: list[Callable[[str, Route | None], None]] = []

    def __len__(self) -> int:
        return len(self._by_prefix)

    def __iter__(self) -> Iterator[Route]:
        return iter(list(self._by_prefix.values()))

    def get(self, prefix: str) -> Route | None:
        return self._by_prefix.get(canonical_prefix(prefix))

    def add(self, prefix: str, data: dict[str, Any], last_activity: float | None = None) -> Route:
        """Add or replace the route at ``prefix``; ``data['target']`` must be a valid target.

        Raises ``ValueError`` (from :func:`parse_target`) for a bad target, before any change.
        """
        target = parse_target(data["target"])
        prefix = canonical_prefix(prefix)
        route = Route(prefix, dict(data), target)
        if last_activity is not None:
            route.last_activity = last_activity
        node = self._root
        for seg in prefix.split("/"):
            if seg:
                node = node.children.setdefault(seg, _Node())
        node.route = route
        self._by_prefix[prefix] = route
        route.json_item()  # serialise now, so listing 10k routes is a join, not 10k dumps
        for listener in self.listeners:
            listener(prefix, route)
        return route

    def remove(self, prefix: str) -> Route | None:
        """Remove the route at ``prefix``; prune trie nodes left empty. Returns the old route."""
        prefix = canonical_prefix(prefix)
        route = self._by_prefix.pop(prefix, None)
        if route is None:
            return None
        path: list[tuple[str, _Node]] = [("", self._root)]
        node = self._root
        for seg in prefix.split("/"):
            if seg:
                node = node.children[seg]
                path.append((seg, node))
        node.route = None
        # Walk back up, dropping nodes that now hold neither a route nor children.
        for i in range(len(path) - 1, 0, -1):
            seg, node = path[i]
            if node.route is None and not node.children:
                del path[i - 1][1].children[seg]
            else:
                break
        for listener in self.listeners:
            listener(prefix, None)
        return route

    def find(self, segments: list[str]) -> Route | None:
        """Longest-prefix match for already split request segments (see request_segments)."""
        node = self._root
        best = node.route
        children = node.children
        for seg in segments:
            node = children.get(seg)  # type: ignore[assignment]
            if node is None:
                break
            if node.route is not None:
                best = node.route
            children = node.children
        return best
