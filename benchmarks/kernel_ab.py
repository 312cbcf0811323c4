"""A/B of the single-user kernel path between source trees: round trip and CPU per ``1+1``.

    git worktree add /tmp/amalthea-base <rev>
    python benchmarks/kernel_ab.py /tmp/amalthea-base .  [-n 150] [--rounds 6] [--proxy]

Each tree gets its own ``amalthea-singleuser`` (against one fake hub) with ``PYTHONPATH``
pointing at it, so the server and the kernel it starts run that tree's code; both use the fast
kernel as shipped. With ``--proxy`` the websockets go through one ``amalthea-proxy`` (from
this tree). All stacks stay up and are measured in alternating blocks of ``-n`` executions,
``--rounds`` times, so load drift hits them alike. Per tree we print the median over blocks of:
the client's round trip (p50 of the block; send to both ``execute_reply`` and
``execute_result``, as benchmarks/kernel_rtt.py), and the CPU time the server process and the
kernel process used per execution (all threads, from ``/proc/<pid>/task/*/schedstat``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernel_rtt as kr  # a sibling script, not a package
from fakehub import FakeHub  # kernel_rtt put tests/singleuser on the path

# kernel_rtt's benchmark token may reach the servers of these users.
USERS = ["tcp", "alice", "stock", "nagle", "watcher"]


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:  # the thread ended meanwhile
            pass
    return total


def summary(values: list[float]) -> str:
    runs = " ".join(f"{v:.2f}" for v in values)
    return f"{statistics.median(values):6.2f}  [{runs}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="+", type=Path, help="source trees (repository roots)")
    ap.add_argument("-n", type=int, default=150, help="executions per block")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--proxy", action="store_true", help="through amalthea-proxy")
    opts = ap.parse_args()
    if len(opts.trees) > len(USERS):
        ap.error(f"at most {len(USERS)} trees")
    trees = [str(t.resolve()) for t in opts.trees]
    for tree in trees:
        if not (Path(tree) / "amalthea" / "singleuser").is_dir():
            ap.error(f"{tree}: not an amalthea source tree (no amalthea/singleuser)")

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kernel-ab-")))
        hub = FakeHub().start()
        stack.callback(hub.stop)
        hub.state.tokens[kr.TOKEN] = kr.USER
        servers = {}
        saved = os.environ.get("PYTHONPATH")
        try:
            for tree, user in zip(trees, USERS, strict=False):
                os.environ["PYTHONPATH"] = tree  # inherited by the server and its kernels
                servers[tree] = kr.singleuser(stack, tmp, hub, user, [])
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        api, public = kr.proxy(stack, tmp) if opts.proxy else (None, "")
        runners, pids = {}, {}
        for tree, server in servers.items():
            base = server.ready()
            if api is not None:
                api.ready()
                origin, path = base.split("/user/")
                httpx.post(
                    f"{api.base}api/routes/user/{path}", headers=kr.auth(), json={"target": origin}
                ).raise_for_status()
                base = f"{public}/user/{path}"
            runners[tree] = stack.enter_context(kr.kernel_ws(base, kr.auth(), None))
            (kernel,) = psutil.Process(server.proc.pid).children(recursive=True)
            pids[tree] = (server.proc.pid, kernel.pid)
        for once in runners.values():
            for _ in range(opts.warmup):
                once()
        rtt: dict[str, list[float]] = {t: [] for t in trees}
        server_cpu: dict[str, list[float]] = {t: [] for t in trees}
        kernel_cpu: dict[str, list[float]] = {t: [] for t in trees}
        for _ in range(opts.rounds):
            for tree, once in runners.items():
                server_pid, kernel_pid = pids[tree]
                s0, k0 = cpu_ns(server_pid), cpu_ns(kernel_pid)
                block = [once()[0] * 1000 for _ in range(opts.n)]
                s1, k1 = cpu_ns(server_pid), cpu_ns(kernel_pid)
                rtt[tree].append(statistics.median(block))
                server_cpu[tree].append((s1 - s0) / opts.n / 1e6)
                kernel_cpu[tree].append((k1 - k0) / opts.n / 1e6)

    where = "through amalthea-proxy" if opts.proxy else "straight to the server"
    print(
        f"{opts.rounds} blocks x {opts.n} executions of 1+1 per tree, {where}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        "median over blocks [each block]"
    )
    for tree in trees:
        print(f"{tree}")
        print(f"  round trip p50 ms      {summary(rtt[tree])}")
        print(f"  server CPU ms / exec   {summary(server_cpu[tree])}")
        print(f"  kernel CPU ms / exec   {summary(kernel_cpu[tree])}")


if __name__ == "__main__":
    main()
