"""Inner loop for the ``restart`` figure: time an Amalthea hub restart on a copy of a big database.

Builds (once, cached in ``.work/restart-data-<users>``) a data directory with ``--users`` users
created over the REST API like ``run.py --phases users_big`` does, copies its database and
secrets into a scratch directory, starts the hub once (that start also starts the proxy, which
keeps running, as in the benchmark) and trades the admin's password for a token. Then, ``--repeat`` times: start the hub, time until ``/hub/api``
answers 200 through the proxy and ``GET /hub/api/users/<last user>`` answers 200 (what
``scenario.wait_up`` waits for), stop it with SIGTERM.

    python3 benchmarks/hub/restart_profile.py                 # 5 restarts, median
    python3 benchmarks/hub/restart_profile.py --importtime    # + the slowest imports of one start
    python3 benchmarks/hub/restart_profile.py --cprofile out.prof
    git worktree add /tmp/before HEAD~3
    python3 benchmarks/hub/restart_profile.py --compare /tmp/before   # interleaved A/B

Stdlib only; runs the hub from ``--venv`` (default: the repository's ``.venv``). The load average
is printed with every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hubs
import procstat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def status(port: int, path: str, token: str = "") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"token {token}"} if token else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()


def wait_up(hub: hubs.Amalthea, user: str, token: str, timeout: float = 120) -> float:
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert hub.proc is not None
        if hub.proc.poll() is not None:
            sys.exit(f"hub exited with {hub.proc.returncode}; see {hub.work}/hub-{hub.starts}.log")
        if status(hub.port, "/hub/api") == 200 and (
            not user or status(hub.port, f"/hub/api/users/{user}", token) == 200
        ):
            return time.perf_counter() - t0
        time.sleep(0.02)
    sys.exit(f"hub did not answer within {timeout:g} s; see {hub.work}/hub-{hub.starts}.log")


def new_token(hub: hubs.Amalthea) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    body = {"auth": {"username": hubs.ADMIN, "password": hubs.PASSWORD}, "note": "restart"}
    conn.request("POST", f"/hub/api/users/{hubs.ADMIN}/tokens", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})  # fmt: skip
    resp = conn.getresponse()
    raw = resp.read()
    if resp.status not in (200, 201):
        sys.exit(f"could not get a token: {resp.status} {raw[:300]!r}")
    return str(json.loads(raw)["token"])


def build_data(venv: Path, users: int) -> Path:
    """A data dir with ``users`` users named like the benchmark's (u00000...), made once."""
    data = HERE / ".work" / f"restart-data-{users}"
    if (data / "done").exists():
        return data
    hub = hubs.Amalthea("amalthea", data, venv)
    hub.prepare()
    print(f"creating {users} users in {data} (once) ...", flush=True)
    try:
        hub.start()
        wait_up(hub, "", "")
        token = new_token(hub)
        for start in range(0, users, 100):
            names = [f"u{i:05d}" for i in range(start, min(users, start + 100))]
            conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=120)
            conn.request("POST", "/hub/api/users", body=json.dumps({"usernames": names}),
                         headers={"Authorization": f"token {token}"})  # fmt: skip
            resp = conn.getresponse()
            raw = resp.read()
            if resp.status != 201:
                sys.exit(f"POST /hub/api/users -> {resp.status}: {raw[:300]!r}")
    finally:
        hub.teardown()
    (data / "done").write_text("")
    return data


def last_user(db: Path) -> str:
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT name FROM users WHERE name LIKE 'u%' ORDER BY name DESC").fetchone()
    return row[0] if row else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=10000, help="users in the database")
    ap.add_argument("--src", type=Path,
                    help="data dir to copy (amalthea.sqlite + amalthea_secrets.json); "
                    "default: built once under .work/")  # fmt: skip
    ap.add_argument("--venv", type=Path, default=REPO / ".venv")
    ap.add_argument("--repeat", "-n", type=int, default=5)
    ap.add_argument("--importtime", action="store_true", help="print the slowest imports")
    ap.add_argument("--cprofile", type=Path, help="write a cProfile of one start to this file")
    ap.add_argument("--timeline", action="store_true",
                    help="one more start through startup_timeline.py: when each step ran")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--compare", type=Path, metavar="TREE",
                    help="another checkout (e.g. a git worktree): its amalthea/ is put on "
                    "PYTHONPATH for every other restart, interleaved with this one")  # fmt: skip
    args = ap.parse_args()

    # like install.amalthea(): no start pays for recompiling a module edited since its .pyc
    subprocess.run([str(args.venv / "bin" / "python"), "-m", "compileall", "-q", str(REPO / "amalthea")],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    src = args.src or build_data(args.venv.resolve(), args.users)
    work = Path(tempfile.mkdtemp(prefix="amalthea-restart-"))
    hub = hubs.Amalthea("amalthea", work, args.venv.resolve())
    hub.prepare()
    for name in ("amalthea.sqlite", "amalthea_secrets.json"):
        if (src / name).exists():
            shutil.copy2(src / name, work / name)
    user = last_user(work / "amalthea.sqlite") if (work / "amalthea.sqlite").exists() else ""
    print(f"scratch {work}; last user {user or '(none)'}; hub from {hub.venv}", flush=True)
    try:
        hub.start()  # also starts the proxy, which outlives the hub like in the benchmark
        first = wait_up(hub, "", "")
        token = new_token(hub)
        print(f"first start (starts the proxy): {first:.3f} s", flush=True)
        hub.stop()
        trees = {"this tree": None} if args.compare is None else {
            "this tree": None, str(args.compare): args.compare.resolve()}  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        base_env = hub.env
        for i in range(args.repeat):
            for name, tree in trees.items():
                hub.env = lambda tree=tree: {**base_env(), **({"PYTHONPATH": str(tree)} if tree else {})}  # type: ignore[method-assign,misc]  # fmt: skip
                if tree is not None:
                    subprocess.run([str(args.venv / "bin" / "python"), "-m", "compileall", "-q",
                                    str(tree / "amalthea")], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
                time.sleep(0.5)
                load = os.getloadavg()[0]
                hub.start()
                times[name].append(wait_up(hub, user, token))
                assert hub.proc is not None
                # CPU of the hub until it answered: steadier than wall time on a busy machine
                cpus[name].append(procstat.cpu_seconds(hub.proc.pid))
                print(f"restart {i + 1} ({name}): {times[name][-1]:.3f} s, hub CPU "
                      f"{cpus[name][-1]:.2f} s (load {load:.2f})", flush=True)  # fmt: skip
                hub.stop()
        hub.env = base_env  # type: ignore[method-assign]
        for name, ts in times.items():
            print(f"{name}: median {statistics.median(ts):.3f} s, min {min(ts):.3f} s over "
                  f"{len(ts)}; hub CPU median {statistics.median(cpus[name]):.2f} s")  # fmt: skip
        if args.importtime:
            profile_imports(hub)
        if args.timeline:
            timeline(hub, user, token)
        if args.cprofile:
            cprofile(hub, args.cprofile.resolve(), user, token)
    finally:
        hub.teardown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def profile_imports(hub: hubs.Amalthea) -> None:
    out = subprocess.run([str(hub.venv / "bin" / "python"), "-X", "importtime", "-c",
                          "import amalthea.cli, amalthea.hub.app"],
                         env=hub.env(), capture_output=True, text=True)  # fmt: skip
    rows = []
    for line in out.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    print("slowest imports (cumulative ms, self ms, module):")
    for cum, own, mod in sorted(rows, reverse=True)[:40]:
        print(f"{cum / 1000:8.1f} {own / 1000:7.1f} {mod}")


def timeline(hub: hubs.Amalthea, user: str, token: str) -> None:
    python = str(hub.venv / "bin" / "python")
    command = [python, str(HERE / "startup_timeline.py"), "-f", str(hub.work / "config.py")]
    hub.command = lambda: command  # type: ignore[method-assign]
    hub.start()
    took = wait_up(hub, user, token)
    hub.stop()
    log = (hub.work / f"hub-{hub.starts}.log").read_text()
    print("\n".join(line for line in log.splitlines() if "[timeline]" in line))
    print(f"timeline start: {took:.3f} s until both answered")


def cprofile(hub: hubs.Amalthea, out: Path, user: str, token: str) -> None:
    """One start under cProfile; the profile is written when SIGTERM ends the hub."""
    exe = hub.venv / "bin" / "amalthea"
    hub.command = lambda: [str(hub.venv / "bin" / "python"), "-m", "cProfile", "-o", str(out),  # type: ignore[method-assign]
                           str(exe), "-f", str(hub.work / "config.py")]  # fmt: skip
    hub.start()
    print(f"under cProfile: {wait_up(hub, user, token):.3f} s")
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGTERM)
    hub.proc.wait(60)
    print(f"profile written to {out}")


if __name__ == "__main__":
    main()
