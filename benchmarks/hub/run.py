#!/usr/bin/env python3
"""One command: the same scenario against JupyterHub 6.1.1 + CHP and against Amalthea.

    python benchmarks/hub/run.py                 # full: 1,000 then 10,000 users, 1/10/30 spawns
    python benchmarks/hub/run.py --quick         # 100 then 1,000 users, 1/3/5 spawns, 3 s loads
    python benchmarks/hub/run.py --only amalthea # one hub (figures, no ratios)

Installs what it compares under benchmarks/hub/.work/ (see install.py), runs the phases of
scenario.py on 127.0.0.1 against both hubs interleaved, prints the table and writes it to
benchmarks/hub/results/latest.md (raw figures in latest.json). Talks only the hubs' public
HTTP interfaces; the one exception is /proc, read for hub CPU time and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import install  # noqa: E402  (stdlib-only; the rest needs the harness venv)


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["amalthea", "jupyterhub"], help="Run one hub only.")
    ap.add_argument("--quick", action="store_true", help="Fewer users, shorter phases.")
    ap.add_argument("--duration", type=float, help="Seconds per load test (default 10; quick 3).")
    ap.add_argument("--phases", help="Comma-separated subset of phases (start is always run).")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.md",
                    help="Where the markdown table goes.")  # fmt: skip
    return ap.parse_args()


def ensure_venvs(args: argparse.Namespace) -> dict[str, Path]:
    out = {"harness": install.harness()}
    if args.only != "amalthea":
        out["jupyterhub"], out["chp"] = install.jupyterhub(), install.chp()
    if args.only != "jupyterhub":
        out["amalthea"] = install.amalthea()
    return out


def main() -> None:
    args = parse()
    if "BENCH_HUB_PATHS" in os.environ:  # second pass, inside the harness venv
        paths = {k: Path(v) for k, v in json.loads(os.environ["BENCH_HUB_PATHS"]).items()}
    else:
        paths = ensure_venvs(args)
        # re-run inside the harness venv (aiohttp, websockets); installs are done by now
        os.environ["BENCH_HUB_PATHS"] = json.dumps({k: str(v) for k, v in paths.items()})
        os.execv(str(paths["harness"]), [str(paths["harness"]), __file__, *sys.argv[1:]])
    with exclusive_run():
        asyncio.run(bench(args, paths))


@contextlib.contextmanager
def exclusive_run() -> Iterator[None]:
    """One run at a time: a second run would wipe this one's hub directories (and its load
    would distort both runs' figures), so it waits for the first to finish."""
    install.WORK.mkdir(parents=True, exist_ok=True)
    with open(install.WORK / "run.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            print(f"another benchmark run (pid {lock.read().strip() or '?'}) is using "
                  f"{install.WORK}; waiting for it to finish ...", flush=True)  # fmt: skip
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


async def bench(args: argparse.Namespace, paths: dict[str, Path]) -> None:
    import hubs
    import report
    import scenario

    p = scenario.Params.quick() if args.quick else scenario.Params()
    if args.duration:
        p.duration = args.duration
    targets: list[hubs.Hub] = []
    if "jupyterhub" in paths:
        jh = hubs.JupyterHub(
            "jupyterhub", install.WORK / "run-jupyterhub", paths["jupyterhub"].parent.parent
        )
        jh.chp = paths["chp"]
        targets.append(jh)
    if "amalthea" in paths:
        targets.append(hubs.Amalthea("amalthea", install.WORK / "run-amalthea",
                                     paths["amalthea"].parent.parent))  # fmt: skip
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.monotonic()
    only = set(args.phases.split(",")) | {"start"} if args.phases else None
    runs = await scenario.run_all(targets, p, only)
    figs = {r.hub.name: r.fig for r in runs}
    spec = report.rows(p.users_small, p.users_big, p.spawn_sizes)
    lines = [
        f"# Hub benchmark: JupyterHub 6.1.1 + CHP vs Amalthea{' (quick)' if args.quick else ''}",
        "",
        f"Run {started}, {time.monotonic() - t0:.0f} s, on {platform.node()} "
        f"({os.cpu_count()} cores, {platform.python_version()}), 127.0.0.1 only. "
        f"Command: `python benchmarks/hub/run.py {' '.join(sys.argv[1:])}`.",
        "",
        "Ratio = Amalthea ÷ JupyterHub (higher is better for rates, lower for times, CPU, "
        "memory). Phases interleaved per hub; load average per phase below. Load tests: "
        f"c={p.concurrency}, {p.duration:g} s each; spawn/bare-start figures are medians of "
        f"{p.repeats} (the spawn overhead: median of {p.repeats} adjacent bare-start/spawn "
        f"pairs' differences, order alternating); kernel RTT over {p.rounds} `1+1` "
        "executions.",
        "",
        *report.table(figs.get("jupyterhub", {}), figs.get("amalthea", {}), spec),
        "",
        "## Load average (1 min) at the start of each phase",
        "",
        *report.load_table(figs, [name for name, _ in scenario.PHASES]),
        "",
        "## Versions",
        "",
    ]
    for name, mods in (("jupyterhub", ["jupyterhub", "jupyterlab", "jupyter_server", "tornado",
                                       "SQLAlchemy"]),
                       ("amalthea", ["amalthea", "jupyterlab", "jupyter_server", "tornado",
                                     "SQLAlchemy"])):  # fmt: skip
        if name in paths:
            v = install.versions(paths[name], mods)
            lines.append(f"- {name} venv: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    lines += ["", "## Notes (errors, failed phases)", ""]
    for r in runs:
        lines += [f"- {r.hub.name}: {n}" for n in r.notes] or [f"- {r.hub.name}: none"]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"params": vars(p), "figures": figs, "notes": {r.hub.name: r.notes for r in runs}},
        indent=1, default=str))  # fmt: skip
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
