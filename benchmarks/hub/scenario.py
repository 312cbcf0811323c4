"""The scenario, phase by phase, run against each hub in turn (interleaved per phase).

Interleaving (phase 1 on JupyterHub, phase 1 on Amalthea, phase 2 on JupyterHub, ...) keeps
both hubs' figures for one phase a minute or two apart, so a neighbour's load on the shared
machine moves both the same way. Phases are cumulative, like the baseline's: logins, spawns
and restart run with the full user count in the database.

A phase that fails on one hub is recorded (figure "error", message in the notes) and the run
goes on; only a hub that does not start is dropped from the later phases.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import client
import procstat
from client import Api, BenchError
from hubs import ADMIN, PASSWORD, Hub, free_port


@dataclass
class Params:
    users_small: int = 1000
    users_big: int = 10000
    batch: int = 100
    duration: float = 10.0
    concurrency: int = 10
    spawn_sizes: tuple[int, int, int] = (1, 10, 30)
    repeats: int = 5  # single spawns and bare starts: this many pairs, medians
    rounds: int = 50

    @classmethod
    def quick(cls) -> Params:
        return cls(users_small=100, users_big=1000, duration=3.0, spawn_sizes=(1, 3, 5),
                   repeats=1, rounds=20)  # fmt: skip


@dataclass
class Run:
    hub: Hub
    http: aiohttp.ClientSession
    api: Api
    fig: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    users: int = 0
    alive: bool = True

    @property
    def pid(self) -> int:
        pid = self.hub.pid
        if pid is None:
            raise BenchError(f"{self.hub.name}: no process listens on the hub port")
        return pid


def uname(i: int) -> str:
    return f"u{i:05d}"


# -- start / stop -----------------------------------------------------------------------------
async def wait_up(run: Run, timeout: float = 180, check_user: str | None = None) -> float:
    """Seconds from now until /hub/api answers 200 through the proxy (and, if asked, a user GET)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.hub.proc is not None and run.hub.proc.poll() is not None:
            raise BenchError(f"{run.hub.name} exited with {run.hub.proc.returncode} at startup; "
                             f"see {run.hub.work}/hub-{run.hub.starts}.log")  # fmt: skip
        try:
            if await run.api.status("GET", "") == 200 and (
                check_user is None or await run.api.status("GET", f"/users/{check_user}") == 200
            ):
                return time.perf_counter() - t0
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.02)
    raise BenchError(f"{run.hub.name} did not answer /hub/api within {timeout:g} s")


async def phase_start(run: Run, p: Params) -> None:
    run.hub.prepare()
    run.hub.start()
    run.fig["start_empty_s"] = await wait_up(run)
    # a token over the public API: log in once (creates the admin), then trade the password
    async with client.login_session() as s:
        await client.form_login(s, run.hub.url, ADMIN, PASSWORD)
    _, tok = await run.api.call("POST", f"/users/{ADMIN}/tokens",
                                {"auth": {"username": ADMIN, "password": PASSWORD},
                                 "note": "benchmark"}, ok=(200, 201))  # fmt: skip
    run.api.token = tok["token"]
    await run.api.call("GET", "/users?limit=1")


# -- a. users API -----------------------------------------------------------------------------
async def create_users(run: Run, upto: int, batch: int) -> None:
    first = run.users
    cpu0, t0 = procstat.cpu_seconds(run.pid), time.perf_counter()
    for start in range(first, upto, batch):
        names = [uname(i) for i in range(start, min(upto, start + batch))]
        _, created = await run.api.call("POST", "/users", {"usernames": names}, ok=(201,))
        if len(created) != len(names):
            raise BenchError(f"POST /users created {len(created)} of {len(names)}")
        run.users = start + len(names)
    secs, cpu = time.perf_counter() - t0, procstat.cpu_seconds(run.pid) - cpu0
    tag = f"create_{first}_{upto}"
    run.fig[f"{tag}_s"] = secs
    run.fig[f"{tag}_rate"] = (upto - first) / secs
    run.fig[f"{tag}_cpu_ms"] = 1000 * cpu / (upto - first)


async def api_load(run: Run, p: Params, at: int) -> None:
    pages = max(1, math.ceil(run.users / 200))
    accept = {"Accept": client.PAGINATION}

    async def list_page(i: int) -> bool:
        return await run.api.status("GET", f"/users?limit=200&offset={(i % pages) * 200}",
                                    accept) == 200  # fmt: skip

    async def get_one(i: int) -> bool:
        return await run.api.status("GET", f"/users/{uname((i * 7919) % run.users)}") == 200

    # one checked page first: the envelope must be there, or the load figures mean nothing
    _, page = await run.api.call("GET", "/users?limit=200&offset=0", headers=accept)
    if not isinstance(page, dict) or len(page.get("items", [])) != min(200, run.users + 1):
        raise BenchError(f"paginated GET /users: unexpected body {str(page)[:200]}")
    for name, fn in (("list", list_page), ("get", get_one)):
        res = await client.load(fn, p.concurrency, p.duration, run.pid)
        for k, v in res.summary().items():
            run.fig[f"{name}_{at}_{k}"] = v
        if res.errors:
            run.notes.append(f"{name} users @{at}: {res.errors} errors, first: {res.first_error}")


async def phase_users_small(run: Run, p: Params) -> None:
    await create_users(run, p.users_small, p.batch)
    await api_load(run, p, p.users_small)


async def phase_users_big(run: Run, p: Params) -> None:
    await create_users(run, p.users_big, p.batch)
    await api_load(run, p, p.users_big)


# -- b. login form ----------------------------------------------------------------------------
async def phase_login(run: Run, p: Params) -> None:
    sessions = [client.login_session() for _ in range(p.concurrency)]
    try:
        async with client.login_session() as s:  # a wrong password must not log in
            try:
                await client.form_login(s, run.hub.url, uname(1), "wrong-password")
                run.notes.append("login with a wrong password succeeded")
            except BenchError:
                pass

        async def one(i: int) -> bool:
            return await client.form_login(sessions[i % p.concurrency], run.hub.url,
                                           uname((i * 31) % run.users), PASSWORD)  # fmt: skip

        res = await client.load(one, p.concurrency, p.duration, run.pid)
    finally:
        for s in sessions:
            await s.close()
    for k, v in res.summary().items():
        run.fig[f"login_{k}"] = v
    if res.errors:
        run.notes.append(f"login: {res.errors} errors, first: {res.first_error}")


# -- c. spawns --------------------------------------------------------------------------------
async def bare_start(run: Run) -> float:
    """The single-user command started by hand, same env shape: seconds until it answers HTTP."""
    port = free_port()
    home = run.hub.work / "bare"
    home.mkdir(exist_ok=True)
    env = run.hub.singleuser_env("bare", port, home)
    with open(run.hub.work / "bare.log", "ab") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(run.hub.singleuser_command(), cwd=home, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        while proc.poll() is None:
            try:
                async with run.http.get(f"http://127.0.0.1:{port}/user/bare/api",
                                        allow_redirects=False) as r:  # fmt: skip
                    await r.read()
                    return time.perf_counter() - t0
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.02)
        raise BenchError(f"bare single-user server exited with {proc.returncode}; see bare.log")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def spawn_many(run: Run, users: list[str]) -> tuple[list[float], list[str]]:
    res = await asyncio.gather(*(client.spawn(run.api, u) for u in users), return_exceptions=True)
    times = [r for r in res if isinstance(r, float)]
    errors = [f"{u}: {r}" for u, r in zip(users, res, strict=True) if not isinstance(r, float)]
    return times, errors


async def stop_many(run: Run, users: list[str]) -> list[float]:
    res = await asyncio.gather(*(client.stop(run.api, u) for u in users), return_exceptions=True)
    for u, r in zip(users, res, strict=True):
        if not isinstance(r, float):
            run.notes.append(f"stop {u}: {r}")
    return [r for r in res if isinstance(r, float)]


async def phase_spawn_one(run: Run, p: Params) -> None:
    """Pairs of (bare start, spawn) one after the other; the overhead is the median of the
    pairs' differences. The server's own start varies by a second or more between starts
    (imports, page cache), so only starts close in time are compared, and which goes first
    alternates (the first of a pair can pay for cold caches the second then finds warm)."""
    bare, ready, stops, overheads = [], [], [], []
    for i in range(p.repeats):
        if i % 2 == 0:
            b = await bare_start(run)
            times, errors = await spawn_many(run, [uname(10 + i)])
        else:
            times, errors = await spawn_many(run, [uname(10 + i)])
            b = await bare_start(run)
        if errors:
            raise BenchError(f"single spawn failed: {errors[0]}")
        bare.append(b)
        ready += times
        overheads.append(times[0] - b)
        stops += await stop_many(run, [uname(10 + i)])
    run.fig["bare_start_s"] = statistics.median(bare)
    run.fig["spawn_1_s"] = statistics.median(ready)
    run.fig["spawn_overhead_s"] = statistics.median(overheads)
    run.fig["stop_1_s"] = statistics.median(stops) if stops else float("nan")


async def phase_spawn_n(run: Run, n: int) -> None:
    users = [uname(100 + i) for i in range(n)]
    t0 = time.perf_counter()
    times, errors = await spawn_many(run, users)
    run.fig[f"spawn_{n}_total_s"] = time.perf_counter() - t0
    run.fig[f"spawn_{n}_p50_s"] = client.pct(times, 50)
    run.fig[f"spawn_{n}_failures"] = len(errors)
    run.notes += [f"spawn {n}: {e}" for e in errors[:3]]
    t0 = time.perf_counter()
    stops = await stop_many(run, users)
    run.fig[f"stop_{n}_total_s"] = time.perf_counter() - t0
    run.fig[f"stop_{n}_p50_s"] = client.pct(stops, 50)


# -- d. through the proxy ---------------------------------------------------------------------
async def phase_kernel(run: Run, p: Params) -> None:
    user = uname(3)
    _, tok = await run.api.call("POST", f"/users/{user}/tokens", {"note": "bench kernel"},
                                ok=(200, 201))  # fmt: skip
    await client.spawn(run.api, user)
    try:
        out = await client.kernel_e2e(run.http, run.hub.url, user, tok["token"], p.rounds)
        run.fig.update({f"kernel_{k}": v for k, v in out.items()})
    finally:
        await client.stop(run.api, user)


# -- e. memory and restart --------------------------------------------------------------------
async def phase_restart(run: Run, p: Params) -> None:
    hub_pid, proxy_pid = run.pid, run.hub.proxy_pid()
    run.fig["hub_rss_load_mib"], run.fig["hub_hwm_mib"] = procstat.memory_mib(hub_pid)
    run.fig["proxy_rss_load_mib"] = procstat.memory_mib(proxy_pid)[0] if proxy_pid else float("nan")
    run.fig["hub_stop_s"] = run.hub.stop()
    await asyncio.sleep(1.0)  # let the port and the machine settle; not part of the figure
    t0 = time.perf_counter()
    run.hub.start()
    await wait_up(run, check_user=uname(run.users - 1))
    run.fig["restart_s"] = time.perf_counter() - t0
    await asyncio.sleep(2.0)
    run.fig["hub_rss_restart_mib"] = procstat.memory_mib(run.pid)[0]
    proxy_pid = run.hub.proxy_pid()
    run.fig["proxy_rss_restart_mib"] = (
        procstat.memory_mib(proxy_pid)[0] if proxy_pid else float("nan")
    )


PHASES = [
    ("start", phase_start),
    ("users_small", phase_users_small),
    ("users_big", phase_users_big),
    ("login", phase_login),
    ("spawn_1", phase_spawn_one),
    ("spawn_10", lambda run, p: phase_spawn_n(run, p.spawn_sizes[1])),
    ("spawn_30", lambda run, p: phase_spawn_n(run, p.spawn_sizes[2])),
    ("kernel", phase_kernel),
    ("restart", phase_restart),
]


async def run_all(hubs: list[Hub], p: Params, only: set[str] | None = None) -> list[Run]:
    http = client.session()
    runs = [Run(h, http, Api(http, h.url)) for h in hubs]
    try:
        for name, fn in PHASES:
            if only is not None and name not in only:
                continue
            for run in runs:
                if not run.alive:
                    continue
                run.fig[f"load_{name}"] = procstat.loadavg()
                print(f"[{time.strftime('%H:%M:%S')}] {run.hub.name}: {name} "
                      f"(load {run.fig[f'load_{name}']:.2f})", flush=True)  # fmt: skip
                t0 = time.perf_counter()
                try:
                    await fn(run, p)
                except Exception as e:
                    run.notes.append(f"phase {name} failed: {type(e).__name__}: {e}")
                    print(f"    FAILED: {e}", flush=True)
                    if name == "start":
                        run.alive = False
                print(f"    done in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        for run in runs:
            run.hub.teardown()
        await http.close()
    return runs
