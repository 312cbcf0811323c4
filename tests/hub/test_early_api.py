"""The early API (web/early_api.py) answers exactly what the full hub answers, and the gate
(web/gate.py) holds everything else until the hub is ready, without dropping it.

Equivalence: one real hub (subprocess, real SQLite) with users, groups, named servers and tokens
of every kind; for each case the early API reads the same database file in this process and the
hub answers over HTTP; status, reason and body must be identical (the early answer is taken
twice around the hub's, so a concurrent activity update cannot make a false difference).
"""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from traitlets.config.loader import PyFileConfigLoader

from amalthea.hub.app import Amalthea
from amalthea.hub.store.early_reads import open_reader
from amalthea.hub.web.early_api import Answer, EarlyAPI, early_config
from amalthea.hub.web.gate import Gate
from amalthea.testing.hub import RunningHub, start_hub

FAKE = "c.Spawner.cmd = [__import__('sys').executable, '-m', 'amalthea.testing.fake_singleuser']"
CONFIG = f"c.Amalthea.allow_named_servers = True\n{FAKE}\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Any:
    h = start_hub(tmp_path_factory.mktemp("hub"), config=CONFIG)
    yield h
    h.stop()


def _early(hub: RunningHub) -> EarlyAPI:
    app = Amalthea()
    path = Path(hub.config_path)
    app.update_config(PyFileConfigLoader(path.name, str(path.parent)).load_config())
    app.data_dir = str(hub.data_dir)
    reader = open_reader(Path(app.database_url.removeprefix("sqlite:///")))
    assert reader is not None, "the early API does not read the hub's database"
    return EarlyAPI(early_config(app), reader)


def _token(admin: httpx.Client, user: str, **body: Any) -> str:
    r = admin.post(f"/users/{user}/tokens", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


@pytest.fixture(scope="module")
def world(hub: RunningHub) -> dict[str, Any]:
    """Users, a group, servers running and stopped, and tokens for every case."""
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=60) as admin:
        for name in ("alice", "bob", "carol"):
            assert admin.post(f"/users/{name}").status_code == 201
        assert admin.post("/groups/team", json={"users": ["alice", "carol"]}).status_code == 201
        r = admin.post("/users/alice/servers/one")
        assert r.status_code in (201, 202), r.text
        r = admin.post("/users/alice/servers/two")
        assert r.status_code in (201, 202), r.text
        _wait_ready(admin, "alice", "one")
        _wait_ready(admin, "alice", "two")
        assert admin.delete("/users/alice/servers/two").status_code in (202, 204)
        tokens = {
            # an API-created admin token: the config one is left to the full hub on purpose
            "admin": _token(admin, hub.admin_name),
            "alice": _token(admin, "alice"),
            "bob": _token(admin, "bob"),
            "alice-name-only": _token(admin, "alice", scopes=["read:users:name!user=alice"]),
            "admin-servers": _token(admin, hub.admin_name, scopes=["read:servers"]),
            "admin-team": _token(admin, hub.admin_name, scopes=["read:users!group=team"]),
            "expired": _token(admin, "bob", expires_in=1),
        }
        r = admin.post("/users/bob/tokens", json={"note": "to revoke"})
        assert admin.delete(f"/users/bob/tokens/{r.json()['id']}").status_code == 204
        tokens["revoked"] = r.json()["token"]
    time.sleep(1.2)  # the expiring token expires
    # each token's first use records its activity (a write); do that before comparing
    for tok in tokens.values():
        httpx.get(hub.api_url + "/user", headers={"Authorization": f"token {tok}"})
    time.sleep(0.5)
    return {"tokens": tokens}


def _wait_ready(admin: httpx.Client, user: str, server: str) -> None:
    for _ in range(200):
        if admin.get(f"/users/{user}").json()["servers"].get(server, {}).get("ready"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{user}/{server} did not become ready")


def _real(hub: RunningHub, path: str, headers: dict[str, str]) -> tuple[int, str, bytes, set[str]]:
    parts = urlsplit(hub.hub_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        names = {k.lower() for k, _ in resp.getheaders()}
        return resp.status, resp.reason, resp.read(), names
    finally:
        conn.close()


def _norm(body: bytes) -> Any:
    return json.loads(body) if body else None


CASES = [
    # (id, token key or None, path, answered early?)
    ("version", None, "/hub/api", True),
    ("version-slash", None, "/hub/api/", True),
    ("own-user", "alice", "/hub/api/users/alice", True),
    ("own-user-stopped-servers", "alice", "/hub/api/users/alice?include_stopped_servers", True),
    ("admin-other-user", "admin", "/hub/api/users/alice", True),
    ("admin-stopped", "admin", "/hub/api/users/alice?include_stopped_servers=1", True),
    ("admin-unknown-user", "admin", "/hub/api/users/nobody", True),
    ("user-other-user", "bob", "/hub/api/users/alice", True),
    ("user-unknown-user", "bob", "/hub/api/users/nobody", True),
    ("restricted-own", "alice-name-only", "/hub/api/users/alice", True),
    ("restricted-other", "alice-name-only", "/hub/api/users/bob", True),
    ("servers-only", "admin-servers", "/hub/api/users/alice?include_stopped_servers", True),
    ("group-filter-member", "admin-team", "/hub/api/users/carol", True),
    ("group-filter-other", "admin-team", "/hub/api/users/bob", True),
    ("revoked", "revoked", "/hub/api/users/bob", True),
    ("expired", "expired", "/hub/api/users/bob", True),
    ("no-token", None, "/hub/api/users/alice", True),
    ("query-token-is-not-auth", "?alice", "/hub/api/users/alice", True),
    ("config-admin-target", "admin", "/hub/api/users/admin", False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_early_answers_equal_the_hub(hub: RunningHub, world: dict[str, Any], case: Any) -> None:
    _, key, path, answered = case
    headers: dict[str, str] = {}
    if key is not None and key.startswith("?"):
        path += ("&" if "?" in path else "?") + "token=" + world["tokens"][key[1:]]
    elif key is not None:
        headers["Authorization"] = f"token {world['tokens'][key]}"
    before, (status, reason, body, names) = _compare(hub, path, headers)
    if not answered:
        assert before is None, "this request must wait for the full hub"
        return
    _assert_same(before, status, reason, body, names, "/hub/")


def _compare(
    hub: RunningHub, path: str, headers: dict[str, str]
) -> tuple[Answer | None, tuple[int, str, bytes, set[str]]]:
    """The early answer (stable around the hub's) and the full hub's answer to one GET."""
    early = _early(hub)
    try:
        for _attempt in range(5):
            before = early.answer("GET", path, headers)
            real = _real(hub, path, headers)
            after = early.answer("GET", path, headers)
            if before == after:
                return before, real
        pytest.fail("the database kept changing under the comparison")
    finally:
        early.close()


def _assert_same(
    before: Answer | None, status: int, reason: str, body: bytes, names: set[str], prefix: str
) -> None:
    assert isinstance(before, Answer), "the early API left this request to the full hub"
    assert (before.status, before.reason) == (status, reason), body
    assert before.body == body, (_norm(before.body), _norm(body))
    early_names = {k.lower() for k in Gate(None, prefix).headers_for(before)}
    assert early_names == names


def test_early_answers_equal_the_hub_under_a_base_url(tmp_path: Path) -> None:
    """A hub at /jh/: the early API's routes and every URL in its models carry the prefix."""
    hub = start_hub(tmp_path, config=CONFIG, base_url="/jh/")
    try:
        with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=60) as admin:
            assert admin.post("/users/alice").status_code == 201
            r = admin.post("/users/alice/servers/one")
            assert r.status_code in (201, 202), r.text
            _wait_ready(admin, "alice", "one")
            token = _token(admin, "alice")
        auth = {"Authorization": f"token {token}"}
        httpx.get(hub.api_url + "/user", headers=auth)  # its first use is a write; do it now
        time.sleep(0.5)
        for path, headers in [
            ("/jh/hub/api", {}),
            ("/jh/hub/api/", {}),
            ("/jh/hub/api/users/alice", auth),
            ("/jh/hub/api/users/alice?include_stopped_servers", auth),
            ("/jh/hub/api/users/nobody", auth),
        ]:
            before, (status, reason, body, names) = _compare(hub, path, headers)
            _assert_same(before, status, reason, body, names, "/jh/hub/")
        model = json.loads(_real(hub, "/jh/hub/api/users/alice", auth)[2])
        assert model["servers"]["one"]["url"] == "/jh/user/alice/one/"
        # outside the prefix the early API answers nothing (the full hub 404s it)
        early = _early(hub)
        try:
            assert early.answer("GET", "/hub/api/users/alice", auth) is None
        finally:
            early.close()
    finally:
        hub.stop()


def test_held_write_during_start_succeeds(hub: RunningHub, world: dict[str, Any]) -> None:
    """Restart; the moment the port answers, create a user (held, then done by the full hub)
    and read one (answered early, before the hub says it is running)."""
    token = world["tokens"]["admin"]
    auth = {"Authorization": f"token {token}"}
    hub.restart()  # returns as soon as GET /hub/api answers (early)
    running_at_read = "is running at" in hub.log().split("Stopping the hub")[-1]
    got = httpx.get(hub.api_url + "/users/alice", headers=auth, timeout=60)
    assert got.status_code == 200, got.text
    created = httpx.post(hub.api_url + "/users/dave", headers=auth, timeout=60)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "dave"
    assert httpx.get(hub.api_url + "/users/dave", headers=auth).status_code == 200
    if running_at_read:
        pytest.skip("the hub was fully up before the first request (machine too fast to tell)")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def test_failed_start_answers_held_requests_503(tmp_path: Path) -> None:
    """An outdated schema stops the start after the port is bound: held requests get a 503
    saying why, and the process exits 2 as before."""
    h = start_hub(tmp_path)
    h.stop()
    db = tmp_path / "amalthea.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = '0001_initial'")
    parts = urlsplit(h.hub_url)
    assert parts.hostname is not None and parts.port is not None
    results: list[tuple[int, bytes]] = []

    def poll() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not results:
            if _port_open(parts.hostname or "", parts.port or 0):
                try:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                    conn.request("POST", "/hub/api/users/erin", body=b"")
                    resp = conn.getresponse()
                    results.append((resp.status, resp.read()))
                except OSError:
                    pass
                return
            time.sleep(0.005)

    t = threading.Thread(target=poll)
    t.start()
    proc = subprocess.run([sys.executable, "-m", "amalthea.cli", "-f", str(h.config_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    t.join()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "amalthea upgrade-db" in proc.stderr
    if not results:
        pytest.skip("the hub exited before the request reached it")
    status, body = results[0]
    assert status == 503
    assert "upgrade-db" in json.loads(body)["message"]


def test_fast_start_off_listens_when_ready(tmp_path: Path) -> None:
    h = start_hub(tmp_path, config="c.Amalthea.fast_start = False\n")
    try:
        r = httpx.get(h.api_url + f"/users/{h.admin_name}", headers=h.admin_headers, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        h.stop()
