"""The route trie, the path policy and target parsing, without sockets."""

from __future__ import annotations

import json
import time

import pytest

from amalthea.proxy.routes import (
    BadPath,
    RouteTable,
    canonical_prefix,
    format_timestamp,
    request_segments,
)
from amalthea.proxy.targets import parse_target

T = {"target": "http://127.0.0.1:9"}


def find(table: RouteTable, path: str) -> str | None:
    route = table.find(request_segments(path.encode()))
    return route.prefix if route else None


def test_longest_prefix_by_segments() -> None:
    t = RouteTable()
    for p in ("/", "/user/alice", "/user/alice/lab", "/user/al"):
        t.add(p, T)
    assert find(t, "/user/alice/lab/tree") == "/user/alice/lab"
    assert find(t, "/user/alice/api") == "/user/alice"
    assert find(t, "/user/alice") == "/user/alice"
    assert find(t, "/user/alicex") == "/"  # segments, not string prefixes
    assert find(t, "/user/al/x") == "/user/al"
    assert find(t, "/hub/login") == "/"


def test_no_root_route_means_no_match() -> None:
    t = RouteTable()
    t.add("/user/a", T)
    assert find(t, "/user/b") is None


def test_canonical_prefix() -> None:
    assert canonical_prefix("user/a%20b/") == "/user/a b"
    assert canonical_prefix("/") == "/"
    assert canonical_prefix("") == "/"
    assert canonical_prefix("//user//x//") == "/user/x"


def test_remove_prunes_and_keeps_others() -> None:
    t = RouteTable()
    t.add("/user/a", T)
    t.add("/user/a/lab", T)
    assert t.remove("/user/a/lab") is not None
    assert find(t, "/user/a/lab/x") == "/user/a"
    assert t.remove("/user/a/") is not None
    assert t.remove("/user/a") is None
    assert len(t) == 0
    assert t._root.children == {}


def test_replace_keeps_single_entry() -> None:
    t = RouteTable()
    t.add("/x", {"target": "http://a:1"})
    t.add("/x/", {"target": "http://b:2", "extra": 1})
    assert len(t) == 1
    route = t.get("/x")
    assert route is not None and route.target.host == "b" and route.data["extra"] == 1


def test_encoded_segments_decode_per_segment() -> None:
    t = RouteTable()
    t.add("/user/a b", T)
    t.add("/user/bob", T)
    assert find(t, "/user/a%20b/tree") == "/user/a b"
    # %2F never becomes a separator: "alice/../bob" is one segment and matches nothing.
    assert find(t, "/user/alice%2F..%2Fbob/") is None
    assert find(t, "/user//bob") == "/user/bob"  # empty segments ignored, as CHP


@pytest.mark.parametrize(
    "path",
    [
        "/user/alice/../bob/",
        "/user/alice/%2e%2e/bob",
        "/user/alice/%2E%2e/bob",
        "/user/alice/./x",
        "/..",
        "/user/alice/.%2e/bob",
    ],
)
def test_dot_segments_rejected(path: str) -> None:
    with pytest.raises(BadPath):
        request_segments(path.encode())


def test_dots_inside_names_are_fine() -> None:
    assert request_segments(b"/user/a.b/..c/...") == ["user", "a.b", "..c", "..."]


def test_ten_thousand_routes_lookup_is_flat() -> None:
    t = RouteTable()
    for i in range(10_000):
        t.add(f"/user/u{i}", T)
    t.add("/", T)
    assert len(t) == 10_001
    segs = request_segments(b"/user/u9999/lab/tree/x")
    start = time.perf_counter()
    for _ in range(10_000):
        route = t.find(segs)
    per_lookup = (time.perf_counter() - start) / 10_000
    assert route is not None and route.prefix == "/user/u9999"
    assert per_lookup < 50e-6  # a few microseconds in practice; generous for a busy box
    for i in range(10_000):
        t.remove(f"/user/u{i}")
    assert len(t) == 1 and list(t._root.children) == []


def test_as_json_and_timestamp() -> None:
    t = RouteTable()
    r = t.add("/user/a", {"target": "http://x:1", "user": "a", "jupyterhub": True}, 0.5)
    assert r.as_json() == {
        "target": "http://x:1",
        "user": "a",
        "jupyterhub": True,
        "last_activity": "1970-01-01T00:00:00.500Z",
    }
    assert format_timestamp(1700000000.123456) == "2023-11-14T22:13:20.123Z"
    # the cached serialisation used by GET /api/routes says the same, before and after a touch
    for _ in range(2):
        assert json.loads("{" + r.json_item() + "}") == {"/user/a": r.as_json()}
        r.last_activity = 1700000000.5


@pytest.mark.parametrize(
    "url,key,prefix",
    [
        ("http://127.0.0.1:8888", ("tcp", "127.0.0.1", 8888, False), b""),
        ("http://host", ("tcp", "host", 80, False), b""),
        ("https://h:9/base/", ("tcp", "h", 9, True), b"/base"),
        ("http+unix://%2Ftmp%2Fs.sock", ("unix", "/tmp/s.sock"), b""),
        ("unix+http://%2Ftmp%2Fs.sock/p", ("unix", "/tmp/s.sock"), b"/p"),
        ("unix:/run/x.sock", ("unix", "/run/x.sock"), b""),
    ],
)
def test_targets(url: str, key: tuple, prefix: bytes) -> None:
    t = parse_target(url)
    assert t.key == key and t.path_prefix == prefix


@pytest.mark.parametrize(
    "url", ["", "ftp://x", "http://", "nonsense", 5, "http://h:99999", "http+unix://relative.sock"]
)
def test_bad_targets(url: object) -> None:
    with pytest.raises(ValueError):
        parse_target(url)
