#!/usr/bin/env python3
"""One-command proxy benchmark: direct vs nginx vs CHP vs amalthea-proxy, in one run.

    python benchmarks/proxy/run.py                  # full matrix, 10 s per wrk run
    python benchmarks/proxy/run.py --duration 5     # shorter runs
    python benchmarks/proxy/run.py --soak 10        # 10-minute soak of amalthea-proxy only

Installs what it needs (apt: nginx-light, wrk; npm: configurable-http-proxy@5 under
benchmarks/proxy/.work), starts on 127.0.0.1 an nginx upstream serving a fixed ~70-byte
JSON body and a Python ``websockets`` echo server, then measures every target with wrk
(1 thread; 50 and 10 connections; 1, 1,000 and 10,000 routes registered, wrk cycling over
up to 1,000 of them). Prints a Markdown table and writes ``.work/results.json``.

CPU per 1k = utime+stime of the proxy's process tree (from /proc) per 1,000 requests or
WebSocket messages. Ratios are taken within this run, so a busy machine moves all rows.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
BODY = '{"status":"ok","message":"hello from the benchmark upstream","n":12345}'
TOKEN = "bench-token"

sys.path.insert(0, str(HERE))
from procs import Proc, cpu_seconds, free_port, rss_mb, spawn  # noqa: E402


# -- setup ---------------------------------------------------------------------------------
def ensure_tools() -> Path:
    if not (shutil.which("wrk") and shutil.which("nginx")):
        print("installing nginx-light and wrk with apt-get ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nginx-light", "wrk"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    chp = WORK / "node_modules" / ".bin" / "configurable-http-proxy"
    if not chp.exists():
        print("installing configurable-http-proxy@5 with npm ...", flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(WORK), "configurable-http-proxy@5"],
            check=True,
        )
    try:
        import websockets  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "websockets"], check=True)
    return chp


def nginx_conf(d: Path, port: int, upstream: int | None, ws_port: int | None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if upstream is None:
        server = (
            f"server {{ listen 127.0.0.1:{port}; location / {{ default_type "
            f"application/json; return 200 '{BODY}'; }} }}"
        )
        extra = ""
    else:
        extra = (
            f"upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n"
            "map $http_upgrade $conn_upgrade { default upgrade; '' ''; }\n"
        )
        server = (
            f"server {{ listen 127.0.0.1:{port};\n"
            f"  location /ws {{ proxy_pass http://127.0.0.1:{ws_port}; "
            "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
            "proxy_set_header Connection $conn_upgrade; proxy_read_timeout 1h; }\n"
            "  location / { proxy_pass http://up; proxy_http_version 1.1; "
            "proxy_set_header Connection ''; proxy_set_header Host $host; "
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } }"
        )
    conf = d / "nginx.conf"
    conf.write_text(f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  {extra}
  {server}
}}
""")
    return conf


WS_ECHO = """
import asyncio, sys, websockets
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None):
        await asyncio.Future()
asyncio.run(main())
"""


WRK_LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout,
    e.status))
end
"""


def wrk(port: int, paths: list[str], conns: int, duration: float) -> dict[str, float]:
    script = WORK / f"wrk-{len(paths)}.lua"
    script.write_text(WRK_LUA % ", ".join(json.dumps(p) for p in paths))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{max(1, round(duration))}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{paths[0]}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    reqs, dur_us, p50, p99, errors, non2xx = (int(v) for v in line.split()[1:])
    return {
        "rps": reqs / (dur_us / 1e6),
        "requests": reqs,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "errors": errors,
        "non2xx": non2xx,
    }


def measure_http(
    proc: Proc | None, port: int, paths: list[str], conns: int, duration: float
) -> dict[str, float]:
    wrk(port, paths, conns, min(2.0, duration))  # warm-up
    cpu0 = cpu_seconds(proc.popen.pid) if proc else 0.0
    r = wrk(port, paths, conns, duration)
    if proc:
        r["cpu_ms_per_1k"] = (cpu_seconds(proc.popen.pid) - cpu0) * 1e6 / max(r["requests"], 1)
        r["rss_mb"] = rss_mb(proc.popen.pid)
    return r


def register_routes(api_port: int, n: int, upstream: int, ws_port: int) -> dict[str, float]:
    """Sequential POSTs over one keep-alive connection; returns add latency p50/p99."""
    conn = http.client.HTTPConnection("127.0.0.1", api_port)
    hdrs = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
    times = []

    def post(prefix: str, target: str) -> None:
        body = json.dumps({"target": target, "jupyterhub": True, "user": prefix})
        t0 = time.perf_counter()
        conn.request("POST", "/api/routes" + prefix, body, hdrs)
        resp = conn.getresponse()
        resp.read()
        times.append(time.perf_counter() - t0)
        assert resp.status == 201, resp.status

    t0 = time.perf_counter()
    post("/ws", f"http://127.0.0.1:{ws_port}")
    post("/user/bench", f"http://127.0.0.1:{upstream}")
    for i in range(n - 1):
        post(f"/user/u{i}", f"http://127.0.0.1:{upstream}")
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    conn.request("GET", "/api/routes", headers=hdrs)
    listing = conn.getresponse().read()
    get_ms = (time.perf_counter() - t1) * 1000
    conn.close()
    times.sort()
    return {
        "add_p50_ms": statistics.median(times) * 1000,
        "add_p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "register_s": total,
        "get_all_ms": get_ms,
        "get_all_kb": len(listing) / 1024,
    }


def route_paths(n: int) -> list[str]:
    if n <= 1:
        return ["/user/bench/api/status"]  # same shape as the multi-route paths
    return [f"/user/u{i}/api/status" for i in range(min(n - 1, 1000))]


async def ws_measure(url: str, proc: Proc | None, seconds: float) -> dict[str, float]:
    import websockets

    msg = b"m" * 64
    async with websockets.connect(url, compression=None) as ws:
        for _ in range(100):
            await ws.send(msg)
            await ws.recv()
        rtts = []
        for _ in range(2000):
            t0 = time.perf_counter()
            await ws.send(msg)
            await ws.recv()
            rtts.append(time.perf_counter() - t0)
    rtts.sort()
    count = 0
    stop = time.monotonic() + seconds

    async def pump() -> None:
        # 8 messages in flight per connection until the deadline, then drain.
        nonlocal count
        async with websockets.connect(url, compression=None) as ws:
            for _ in range(8):
                await ws.send(msg)
            inflight = 8
            while inflight:
                await ws.recv()
                count += 1
                inflight -= 1
                if time.monotonic() < stop:
                    await ws.send(msg)
                    inflight += 1

    cpu0 = cpu_seconds(proc.popen.pid) if proc else 0.0
    t0 = time.monotonic()
    await asyncio.gather(*(pump() for _ in range(10)))
    elapsed = time.monotonic() - t0
    out = {
        "rtt_p50_us": rtts[len(rtts) // 2] * 1e6,
        "rtt_p99_us": rtts[int(len(rtts) * 0.99)] * 1e6,
        "msgs_per_s": count / elapsed,
    }
    if proc:
        out["ws_cpu_ms_per_1k"] = (cpu_seconds(proc.popen.pid) - cpu0) * 1e6 / max(count, 1)
    return out


# -- targets -------------------------------------------------------------------------------
@dataclass
class Env:
    upstream: int
    ws_port: int
    chp_bin: Path
    procs: list[Proc] = field(default_factory=list)


def start_target(name: str, env: Env) -> Proc:
    port, api = free_port(), free_port()
    if name == "nginx":
        conf = nginx_conf(WORK / "nginx-proxy", port, env.upstream, env.ws_port)
        return spawn(name, ["nginx", "-c", str(conf), "-p", str(conf.parent)], port)
    # the CHP command line both proxies accept
    listen = ["--ip", "127.0.0.1", "--port", str(port), "--api-ip", "127.0.0.1",
              "--api-port", str(api)]  # fmt: skip
    if name == "chp":
        return spawn(
            name, [str(env.chp_bin), *listen], port, api, env={"CONFIGPROXY_AUTH_TOKEN": TOKEN}
        )
    return spawn(
        name,
        [sys.executable, "-m", "amalthea.proxy", *listen, "--log-level", "warn"],
        port,
        api,
        env={"CONFIGPROXY_AUTH_TOKEN": TOKEN},
    )


def run_matrix(
    env: Env, duration: float, conns_list: list[int], route_counts: list[int], ws_seconds: float
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for conns in conns_list:
        r = measure_http(None, env.upstream, route_paths(1), conns, duration)
        rows.append({"target": "direct", "routes": 0, "conns": conns, **r})
        print(fmt_progress(rows[-1]), flush=True)
    rows.append(
        {
            "target": "direct",
            "routes": 0,
            "conns": "ws",
            **asyncio.run(ws_measure(f"ws://127.0.0.1:{env.ws_port}/ws", None, ws_seconds)),
        }
    )
    print(fmt_progress(rows[-1]), flush=True)
    for name in ("nginx", "chp", "amalthea"):
        counts = [1] if name == "nginx" else route_counts
        for n in counts:
            proc = start_target(name, env)
            try:
                rec: dict[str, Any] = {}
                if proc.api_port:
                    rec = register_routes(proc.api_port, n, env.upstream, env.ws_port)
                paths = route_paths(n)
                for conns in conns_list:
                    r = measure_http(proc, proc.port, paths, conns, duration)
                    rows.append({"target": name, "routes": n, "conns": conns, **rec, **r})
                    print(fmt_progress(rows[-1]), flush=True)
                if n == 1:
                    ws = asyncio.run(ws_measure(f"ws://127.0.0.1:{proc.port}/ws", proc, ws_seconds))
                    rows.append(
                        {
                            "target": name,
                            "routes": n,
                            "conns": "ws",
                            **ws,
                            "rss_mb": rss_mb(proc.popen.pid),
                        }
                    )
                    print(fmt_progress(rows[-1]), flush=True)
            finally:
                proc.stop()
    return rows


def fmt_progress(row: dict[str, Any]) -> str:
    keys = (
        "rps",
        "p50_ms",
        "p99_ms",
        "cpu_ms_per_1k",
        "rss_mb",
        "add_p50_ms",
        "rtt_p50_us",
        "msgs_per_s",
        "ws_cpu_ms_per_1k",
        "non2xx",
        "errors",
    )
    vals = " ".join(f"{k}={row[k]:.3g}" for k in keys if k in row)
    return f"  {row['target']:<9} routes={row['routes']:<6} c={row['conns']:<3} {vals}"


def table(rows: list[dict[str, Any]]) -> str:
    direct = {r["conns"]: r for r in rows if r["target"] == "direct"}
    chp = {(r["routes"], r["conns"]): r for r in rows if r["target"] == "chp"}
    out = [
        "| target | routes | conns | req/s | x direct | x CHP | p50 ms | p99 ms | p99 ÷ CHP "
        "| CPU ms/1k req | ÷ CHP | RSS MB | route add p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["conns"] == "ws":
            continue
        d = direct[r["conns"]]
        c = chp.get((r["routes"], r["conns"])) or chp.get((1, r["conns"]))

        def ratio(key: str, base: dict[str, Any] | None, r: dict[str, Any] = r) -> str:
            if not base or key not in r or not base.get(key):
                return "-"
            return f"{r[key] / base[key]:.2f}"

        out.append(
            f"| {r['target']} | {r['routes'] or '-'} | {r['conns']} | {r['rps']:,.0f} | "
            f"{ratio('rps', d)} | {ratio('rps', c)} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{ratio('p99_ms', c)} | {r.get('cpu_ms_per_1k', 0):.0f} | "
            f"{ratio('cpu_ms_per_1k', c)} | {r.get('rss_mb', 0):.0f} | "
            f"{r.get('add_p50_ms', float('nan')):.3f} |"
        )
    out += [
        "",
        "| target | WS RTT p50 µs | RTT p99 µs | x nginx (p50) | echoed msg/s | "
        "CPU ms/1k msgs | ÷ CHP | RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ws = {r["target"]: r for r in rows if r["conns"] == "ws"}
    for name, r in ws.items():
        ng = ws.get("nginx", {}).get("rtt_p50_us")
        cc = ws.get("chp", {}).get("ws_cpu_ms_per_1k")
        cpu = r.get("ws_cpu_ms_per_1k")
        out.append(
            f"| {name} | {r['rtt_p50_us']:.0f} | {r['rtt_p99_us']:.0f} | "
            f"{r['rtt_p50_us'] / ng:.2f} | {r['msgs_per_s']:,.0f} | "
            f"{'-' if cpu is None else f'{cpu:.0f}'} | "
            f"{f'{cpu / cc:.2f}' if cpu and cc else '-'} | {r.get('rss_mb', 0):.0f} |"
            if ng
            else f"| {name} | {r['rtt_p50_us']:.0f} | {r['rtt_p99_us']:.0f} | - | "
            f"{r['msgs_per_s']:,.0f} | - | - | - |"
        )
    regs = [r for r in rows if "register_s" in r and r["conns"] == rows[0]["conns"]]
    out += [
        "",
        "| target | routes | register s (sequential) | add p50 ms | add p99 ms | "
        "GET /api/routes ms | KB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in regs:
        out.append(
            f"| {r['target']} | {r['routes']} | {r['register_s']:.2f} | "
            f"{r['add_p50_ms']:.3f} | {r['add_p99_ms']:.3f} | {r['get_all_ms']:.1f} | "
            f"{r['get_all_kb']:.0f} |"
        )
    return "\n".join(out)


# -- soak ----------------------------------------------------------------------------------
def soak(env: Env, minutes: float) -> dict[str, Any]:
    proc = start_target("amalthea", env)
    try:
        register_routes(proc.api_port, 1000, env.upstream, env.ws_port)
        script = WORK / "wrk-soak.lua"
        script.write_text(WRK_LUA % ", ".join(json.dumps(p) for p in route_paths(1000)))
        seconds = minutes * 60
        wrk_p = subprocess.Popen(
            [
                "wrk",
                "-t1",
                "-c20",
                f"-d{max(1, round(seconds))}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{proc.port}/",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        samples: list[tuple[float, float]] = []

        async def ws_churn() -> int:
            import websockets

            n = 0
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                async with websockets.connect(
                    f"ws://127.0.0.1:{proc.port}/ws", compression=None
                ) as ws:
                    for _ in range(200):
                        await ws.send(b"s" * 256)
                        await ws.recv()
                        n += 1
            return n

        async def sampler() -> None:
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(10)
                samples.append((time.monotonic() - t0, rss_mb(proc.popen.pid)))
                print(f"  soak t={samples[-1][0]:.0f}s rss={samples[-1][1]:.1f} MB", flush=True)

        async def both() -> int:
            results = await asyncio.gather(*(ws_churn() for _ in range(4)), sampler())
            return sum(r for r in results if isinstance(r, int))

        ws_msgs = asyncio.run(both())
        out, _ = wrk_p.communicate()
        line = next(x for x in out.splitlines() if x.startswith("RESULT"))
        reqs, _, _, p99_us, errors, non2xx = (int(v) for v in line.split()[1:])
        after_1min = next((rss for t, rss in samples if t >= 60), samples[0][1])
        end = samples[-1][1]
        return {
            "minutes": minutes,
            "http_requests": reqs,
            "http_errors": errors,
            "http_non2xx": non2xx,
            "http_p99_ms": p99_us / 1000,
            "ws_messages": ws_msgs,
            "rss_after_1min_mb": after_1min,
            "rss_end_mb": end,
            "growth_pct": (end - after_1min) / after_1min * 100,
            "samples": samples,
        }
    finally:
        proc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--connections", default="50,10")
    ap.add_argument("--routes", default="1,1000,10000")
    ap.add_argument("--ws-seconds", type=float, default=5.0)
    ap.add_argument("--soak", type=float, default=0.0, help="soak minutes (amalthea only)")
    args = ap.parse_args()
    chp = ensure_tools()
    WORK.mkdir(parents=True, exist_ok=True)
    up_port, ws_port = free_port(), free_port()
    upstream = spawn(
        "nginx-upstream",
        [
            "nginx",
            "-c",
            str(nginx_conf(WORK / "nginx-upstream", up_port, None, None)),
            "-p",
            str(WORK / "nginx-upstream"),
        ],
        up_port,
    )
    ws = spawn("ws-echo", [sys.executable, "-c", WS_ECHO, str(ws_port)], ws_port)
    env = Env(up_port, ws_port, chp)
    load0 = os.getloadavg()
    try:
        if args.soak:
            res: dict[str, Any] = {"soak": soak(env, args.soak)}
            print(json.dumps(res["soak"], indent=1))
        else:
            rows = run_matrix(
                env,
                args.duration,
                [int(c) for c in args.connections.split(",")],
                [int(n) for n in args.routes.split(",")],
                args.ws_seconds,
            )
            res = {"rows": rows}
            print()
            print(table(rows))
    finally:
        ws.stop()
        upstream.stop()
    res.update(
        {
            "loadavg_start": load0,
            "loadavg_end": os.getloadavg(),
            "duration": args.duration,
            "cpus": os.cpu_count(),
        }
    )
    what = f"{args.soak:g} min soak" if args.soak else f"{args.duration:g} s per wrk run"
    print(
        f"\nload average start {load0[0]:.1f}, end {os.getloadavg()[0]:.1f}; "
        f"{os.cpu_count()} CPUs; {what}"
    )
    (WORK / ("soak.json" if args.soak else "results.json")).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
