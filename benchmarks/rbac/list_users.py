"""GET /hub/api/users?limit=200 at 10,000 users: req/s and hub CPU per request.

    python benchmarks/rbac/list_users.py [--users 10000] [--seconds 10] [--concurrency 10]

Same shape as benchmarks/hub (JupyterHub 6.1.1 baseline: 13.6 req/s, 66.3 ms hub CPU per
request at 10,000 users, c=10, through the proxy). Hub CPU = utime+stime of the hub process only.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub"))
from procstat import cpu_seconds

from amalthea.testing.hub import start_hub

PAGED = {"Accept": "application/jupyterhub-pagination+json"}


async def load(api: str, headers: dict[str, str], users: int, seconds: float, conc: int,
               path: str) -> tuple[int, list[float]]:  # fmt: skip
    latencies: list[float] = []
    done = 0
    stop = time.monotonic() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < stop:
            offset = random.randrange(0, max(1, users - 200))
            t0 = time.monotonic()
            r = await client.get(path.format(offset=offset), headers=PAGED)
            r.raise_for_status()
            latencies.append(time.monotonic() - t0)
            done += 1

    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=conc)) as client:  # fmt: skip
        await asyncio.gather(*(worker(client) for _ in range(conc)))
    return done, latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=10)
    args = ap.parse_args()
    fake = [sys.executable, "-m", "amalthea.testing.fake_singleuser"]
    hub = start_hub(Path(tempfile.mkdtemp()), config=f"c.Spawner.cmd = {fake!r}")
    try:
        api = httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=300)
        t0 = time.monotonic()
        for start in range(0, args.users, 1000):
            names = [f"bench{i:05d}" for i in range(start, min(args.users, start + 1000))]
            api.post("/users", json={"usernames": names}).raise_for_status()
        print(f"created {args.users} users in {time.monotonic() - t0:.1f} s")
        assert hub.process is not None
        pid = hub.process.pid
        for label, path in (
            ("GET /users?limit=200 (paginated)", "/users?limit=200&offset={offset}"),
            ("GET /users/NAME", "/users/bench00042"),
        ):
            asyncio.run(load(hub.api_url, hub.admin_headers, args.users, 2, 2, path))  # warm up
            cpu0 = cpu_seconds(pid)
            n, lat = asyncio.run(load(hub.api_url, hub.admin_headers, args.users, args.seconds,
                                      args.concurrency, path))  # fmt: skip
            cpu = cpu_seconds(pid) - cpu0
            lat.sort()
            print(f"{label}: {n / args.seconds:.1f} req/s, hub CPU {1000 * cpu / n:.2f} ms/req, "
                  f"p50 {1000 * statistics.median(lat):.0f} ms, "
                  f"p95 {1000 * lat[int(0.95 * len(lat))]:.0f} ms")  # fmt: skip
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
