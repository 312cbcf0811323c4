"""Route stores: what is written is what comes back, and only on changes."""

from __future__ import annotations

import pytest

from amalthea.proxy.store import FileStore, MemoryStore, SqliteStore, open_store


@pytest.fixture(params=["file", "sqlite"])
def store_factory(request, tmp_path):
    path = str(tmp_path / f"routes.{request.param}")
    return lambda: FileStore(path) if request.param == "file" else SqliteStore(path)


def test_roundtrip_and_final_activity(store_factory) -> None:
    s = store_factory()
    assert s.load() == []
    s.put("/user/a", {"target": "http://a:1", "user": "a"}, 1.0)
    s.put("/user/b", {"target": "http://b:1"}, 2.0)
    s.put("/user/a", {"target": "http://a:2", "user": "a"}, 3.0)
    s.delete("/user/b")
    s.close([("/user/a", {"target": "http://a:2", "user": "a"}, 99.0)])
    s2 = store_factory()
    assert s2.load() == [("/user/a", {"target": "http://a:2", "user": "a"}, 99.0)]
    s2.close([])


def test_file_store_survives_crash_and_torn_line(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    s = FileStore(str(path))
    s.load()
    s.put("/a", {"target": "http://a:1"}, 1.0)
    s.put("/b", {"target": "http://b:1"}, 1.0)
    # no close(): a crash. Then a torn half-record at the end.
    with open(path, "a") as f:
        f.write('{"prefix": "/c", "da')
    assert sorted(p for p, _, _ in FileStore(str(path)).load()) == ["/a", "/b"]


def test_file_store_compacts(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    s = FileStore(str(path))
    s.load()
    for i in range(3000):
        s.put("/a", {"target": "http://a:1"}, float(i))
        s.delete("/a")
    s.maybe_compact([])
    assert path.read_text() == ""


def test_open_store_specs(tmp_path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store(f"file:{tmp_path}/x"), FileStore)
    assert isinstance(open_store(f"sqlite:{tmp_path}/x.db"), SqliteStore)
    for bad in ("", "file:", "postgres://x"):
        with pytest.raises(ValueError):
            open_store(bad)
