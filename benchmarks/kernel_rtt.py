"""Kernel round trip: how long ``1+1`` takes, from the client's send to the client's receipt.

    python benchmarks/kernel_rtt.py [-n 60] [--runs 3] [--only client,bare,single,proxy]
                                    [--variants fast,stock,nagle]
                                    [--protocol legacy|v1] [--trace]

One round trip = send ``execute_request`` for ``1+1``, stop the clock when BOTH the
``execute_reply`` (shell) and the ``execute_result`` (iopub) for that request have arrived.
Measured on the client with ``time.perf_counter``; the first ``--warmup`` executions per target
are dropped. Targets, each with its own kernel, all on 127.0.0.1:

  client   jupyter_client straight to a stock ipykernel over ZMQ (no server; the old floor)
  client-fast   the same with amalthea's fast kernel (python -m amalthea.singleuser.kernel)
  bare     a plain ``jupyter server``, kernel websocket (jupyter_server as shipped)
  single   ``amalthea-singleuser`` (against a fake hub) as shipped: TCP_NODELAY, fast kernel,
           fast relay
  single-stock  the same with ``--HubExtension.fast_kernel=False`` (stock ipykernel),
           ``fast_relay=False`` (jupyter_server's relay), ``lean_activity=False``
           (jupyter_server's activity watcher) and ``kernel_ipc=False`` (kernel over TCP)
  single-nagle  the same with ``--HubExtension.kernel_tcp_nodelay=False`` (before that fix)
  single-tcp, single-watcher  as shipped but with only ``kernel_ipc`` / ``lean_activity`` off
  proxy    ``amalthea-singleuser`` (as shipped) through ``amalthea-proxy``
  proxy-stock, proxy-nagle  the same, with the fast kernel or TCP_NODELAY off

``--variants`` picks which of the fast (as shipped), stock, nagle, tcp and watcher variants
of client, single and proxy run (default: fast,stock,nagle; only fast and stock apply to
client).

``--protocol`` picks the websocket framing: ``legacy`` JSON text (default; what
benchmarks/hub/client.py speaks) or ``v1`` binary (what JupyterLab negotiates).
Websocket clients use ``websockets`` (sync), which sets TCP_NODELAY on its own socket
(websockets/sync/client.py), so any Nagle stall measured here is on the server side.
Targets are measured round-robin ``--runs`` times so load drift hits them all alike; we print
each run and the median of the runs' p50/p95, then ratios to the ``client`` floor.
``--trace`` also prints, per target, the median arrival time of each message type.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "singleuser"))
from fakehub import FakeHub

BIN = Path(sys.executable).parent
TOKEN = "benchmark-token"
# One server per variant: alice runs amalthea-singleuser as shipped, stock without the fast
# kernel and relay, nagle without TCP_NODELAY. The benchmark token reaches all three.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "fast": ("alice", []),
    "stock": (
        "stock",
        [
            "--HubExtension.fast_kernel=False",
            "--HubExtension.fast_relay=False",
            "--HubExtension.lean_activity=False",
            "--HubExtension.kernel_ipc=False",
        ],
    ),
    "nagle": ("nagle", ["--HubExtension.kernel_tcp_nodelay=False"]),
    "tcp": ("tcp", ["--HubExtension.kernel_ipc=False"]),
    "watcher": ("watcher", ["--HubExtension.lean_activity=False"]),
}
SUFFIX = {name: "" if name == "fast" else f"-{name}" for name in VARIANTS}
USER = {
    "name": "alice",
    "kind": "user",
    "groups": [],
    "admin": False,
    "scopes": [f"access:servers!server={user}/" for user, _ in VARIANTS.values()],
}

# One execution: total seconds, and {msg_type: seconds after send} for --trace.
Sample = tuple[float, dict[str, float]]
Runner = Callable[[], Sample]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


STARTUP_TIMEOUT = (
    300  # s; jupyter_server takes ~10 s to start on a quiet machine, minutes on a busy one
)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def jupyter_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JUPYTER_"))}
    env.update(
        HOME=str(home),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
    )
    return env


# --- the measurement --------------------------------------------------------------------------


def execute_request(session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": "bench",
            "session": session,
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "buffers": [],
        "content": {
            "code": "1+1",
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }


V1 = "v1.kernel.websocket.jupyter.org"  # JupyterLab's binary framing; None = legacy JSON


def encode_v1(msg: dict[str, Any]) -> bytes:
    """v1 framing: count of offsets, the offsets (u64 LE), then channel and the JSON parts."""
    parts = [msg["channel"].encode()] + [
        json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")
    ]
    offsets = [8 * (len(parts) + 2)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = b"".join(n.to_bytes(8, "little") for n in [len(offsets), *offsets])
    return head + b"".join(parts)


def decode_v1(frame: bytes) -> dict[str, Any]:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * i : 8 * i + 8], "little") for i in range(1, count + 1)]
    parts = [frame[a:b] for a, b in zip(offsets, [*offsets[1:], len(frame)], strict=True)]
    keys = ("channel", "header", "parent_header", "metadata", "content")
    msg = {k: json.loads(v) for k, v in zip(keys[1:], parts[1:5], strict=True)}
    msg["channel"] = parts[0].decode()
    return msg


def ws_runner(ws: ClientConnection) -> Runner:
    session = uuid.uuid4().hex
    v1 = ws.subprotocol == V1

    def once() -> Sample:
        request = execute_request(session)
        msg_id = request["header"]["msg_id"]
        seen: dict[str, float] = {}
        t0 = time.perf_counter()
        ws.send(encode_v1(request) if v1 else json.dumps(request))
        while "execute_reply" not in seen or "execute_result" not in seen:
            frame = ws.recv(timeout=30)
            msg = decode_v1(frame) if isinstance(frame, bytes) else json.loads(frame)
            t = time.perf_counter() - t0
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "status":
                kind += ":" + msg["content"]["execution_state"]
            seen.setdefault(kind, t)
        return max(seen["execute_reply"], seen["execute_result"]), seen

    return once


@contextmanager
def kernel_ws(base: str, headers: dict[str, str], protocol: str | None) -> Iterator[Runner]:
    """Start a kernel on a jupyter_server at ``base`` (http URL ending in /) and open its socket."""
    r = httpx.post(base + "api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    r.raise_for_status()
    kid = r.json()["id"]
    url = (
        base.replace("http", "ws", 1) + f"api/kernels/{kid}/channels?session_id={uuid.uuid4().hex}"
    )
    subprotocols: Any = [protocol] if protocol else None
    try:
        with connect(
            url,
            additional_headers=headers,
            open_timeout=60,
            max_size=None,
            subprotocols=subprotocols,
        ) as ws:
            if ws.subprotocol != protocol:
                raise RuntimeError(f"asked for subprotocol {protocol}, got {ws.subprotocol}")
            yield ws_runner(ws)
    finally:
        httpx.delete(base + f"api/kernels/{kid}", headers=headers, timeout=30)


# --- targets ----------------------------------------------------------------------------------


@contextmanager
def direct_client(fast: bool) -> Iterator[Runner]:
    """jupyter_client and a kernel: the stock python3 spec, or it rewritten as the server does."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    from amalthea.singleuser.kernelspec import enable_fast_kernel

    specs = KernelSpecManager()
    if fast:
        enable_fast_kernel(specs)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)

    def once() -> Sample:
        seen: dict[str, float] = {}
        t0 = time.perf_counter()
        msg_id = kc.execute("1+1", store_history=False)
        while "execute_result" not in seen:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id:
                seen.setdefault(msg["msg_type"], time.perf_counter() - t0)
        while "execute_reply" not in seen:  # usually already queued in the ZMQ socket
            if kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") == msg_id:
                seen["execute_reply"] = time.perf_counter() - t0
        return max(seen["execute_reply"], seen["execute_result"]), seen

    try:
        yield once
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@dataclass
class Server:
    """A started server process; ``ready()`` waits until ``status_url`` answers 200."""

    proc: subprocess.Popen[bytes]
    log: Path
    base: str  # http URL of the jupyter_server root (with prefix), or of the proxy API
    status_url: str

    def ready(self) -> str:
        wait_http(self.status_url, self.proc, self.log, auth())
        return self.base


def launch(
    stack: ExitStack,
    args: list[str],
    env: dict[str, str],
    log: Path,
    base: str,
    status: str = "api/status",
) -> Server:
    proc = stack.enter_context(process(args, env, log))
    return Server(proc, log, base, base + status)


def bare_server(stack: ExitStack, tmp: Path) -> Server:
    home = tmp / "bare"
    home.mkdir()
    port = free_port()
    args = [
        str(BIN / "jupyter-server"),
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
    ]
    return launch(stack, args, jupyter_env(home), home / "server.log", f"http://127.0.0.1:{port}/")


def singleuser(stack: ExitStack, tmp: Path, hub: FakeHub, user: str, extra: list[str]) -> Server:
    """amalthea-singleuser as ``user``'s server, with ``extra`` command-line options."""
    home = tmp / user
    home.mkdir()
    port = free_port()
    prefix = f"/user/{user}/"
    env = jupyter_env(home)
    env.update(
        {
            "JUPYTERHUB_API_TOKEN": hub.state.server_token,
            "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
            "JUPYTERHUB_API_URL": f"{hub.url}/hub/api",
            "JUPYTERHUB_USER": user,
            "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
            "JUPYTERHUB_SERVICE_PREFIX": prefix,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([f"access:servers!server={user}/"]),
            "JUPYTERHUB_ACTIVITY_URL": f"{hub.url}/hub/api/users/{user}/activity",
            "JUPYTERHUB_ACTIVITY_INTERVAL": "3600",
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_HOST": "",
        }
    )
    args = [str(BIN / "amalthea-singleuser"), "--allow-root", *extra]
    return launch(stack, args, env, home / "server.log", f"http://127.0.0.1:{port}{prefix}")


def proxy(stack: ExitStack, tmp: Path) -> tuple[Server, str]:
    """amalthea-proxy; the Server's base is its API URL, the str its public URL."""
    port, api_port = free_port(), free_port()
    args = [
        sys.executable,
        "-m",
        "amalthea.proxy",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-ip",
        "127.0.0.1",
        "--api-port",
        str(api_port),
    ]
    env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=TOKEN)
    api = launch(
        stack, args, env, tmp / "proxy.log", f"http://127.0.0.1:{api_port}/", status="api/routes"
    )
    return api, f"http://127.0.0.1:{port}"


def auth() -> dict[str, str]:
    return {"Authorization": f"token {TOKEN}"}


def open_targets(
    stack: ExitStack, tmp: Path, only: set[str], variants: list[str], protocol: str | None
) -> dict[str, Runner]:
    """Start every process first (they start in parallel), then a kernel on each."""
    singles: dict[str, Server] = {}
    bare = bare_server(stack, tmp) if "bare" in only else None
    if only & {"single", "proxy"}:
        hub = FakeHub().start()
        stack.callback(hub.stop)
        hub.state.tokens[TOKEN] = USER
        for variant in variants:
            user, extra = VARIANTS[variant]
            singles[SUFFIX[variant]] = singleuser(stack, tmp, hub, user, extra)
    api, public = proxy(stack, tmp) if "proxy" in only else (None, "")

    runners: dict[str, Runner] = {}
    if "client" in only:
        # "client" stays the stock kernel (the floor the other rows are compared with).
        for variant in sorted(set(variants) & {"fast", "stock"}, reverse=True):
            name = "client" if variant == "stock" else "client-fast"
            runners[name] = stack.enter_context(direct_client(fast=variant == "fast"))
    if bare is not None:
        runners["bare"] = stack.enter_context(kernel_ws(bare.ready(), auth(), protocol))
    if "single" in only:
        for suffix, server in singles.items():
            runners["single" + suffix] = stack.enter_context(
                kernel_ws(server.ready(), auth(), protocol)
            )
    if api is not None:
        api.ready()
        for suffix, server in singles.items():
            origin, path = server.ready().split("/user/")
            r = httpx.post(
                f"{api.base}api/routes/user/{path}", headers=auth(), json={"target": origin}
            )
            r.raise_for_status()
            runners["proxy" + suffix] = stack.enter_context(
                kernel_ws(f"{public}/user/{path}", auth(), protocol)
            )
    return runners


# --- reporting --------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=60, help="measured executions per target per run")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="client,bare,single,proxy")
    ap.add_argument(
        "--variants",
        default="fast,stock,nagle",
        help="of client/single/proxy: fast (as shipped), stock (no fast kernel), nagle",
    )
    ap.add_argument(
        "--protocol",
        choices=["legacy", "v1"],
        default="legacy",
        help="kernel websocket framing: legacy JSON text (as benchmarks/hub) or v1 binary "
        "(as JupyterLab)",
    )
    ap.add_argument("--trace", action="store_true", help="median arrival time per message type")
    opts = ap.parse_args()
    only = set(opts.only.split(","))
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kernel-rtt-")))
        variants = [v for v in opts.variants.split(",") if v]
        unknown = set(variants) - set(VARIANTS)
        if unknown:
            ap.error(f"--variants: unknown {sorted(unknown)}; choose from {sorted(VARIANTS)}")
        runners = open_targets(stack, tmp, only, variants, V1 if opts.protocol == "v1" else None)
        p50s: dict[str, list[float]] = defaultdict(list)
        p95s: dict[str, list[float]] = defaultdict(list)
        arrivals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for run in range(1, opts.runs + 1):
            for name, once in runners.items():
                for _ in range(opts.warmup):
                    once()
                totals = []
                for _ in range(opts.n):
                    total, seen = once()
                    totals.append(total * 1000)
                    for kind, t in seen.items():
                        arrivals[name][kind].append(t * 1000)
                p50s[name].append(pct(totals, 0.5))
                p95s[name].append(pct(totals, 0.95))
                print(
                    f"run {run} {name:13} p50 {p50s[name][-1]:7.2f} ms  "
                    f"p95 {p95s[name][-1]:7.2f} ms",
                    flush=True,
                )
    load = os.getloadavg()[0]
    print(
        f"\n{opts.runs} runs x {opts.n} executions of 1+1 ({opts.protocol} websocket framing); "
        f"load average {load:.1f} on {os.cpu_count()} cores; median over runs"
    )
    floor = statistics.median(p50s["client"]) if "client" in p50s else None
    print(f"{'target':13} {'p50 ms':>8} {'p95 ms':>8} {'p50/client':>11} {'fast/stock':>11}")
    for name in runners:
        p50, p95 = statistics.median(p50s[name]), statistics.median(p95s[name])
        ratio = f"{p50 / floor:10.2f}x" if floor else ""
        # the fast kernel's row against the same target with the stock kernel, same run
        stock = {"client-fast": "client"}.get(name, f"{name}-stock")
        versus = f"{p50 / statistics.median(p50s[stock]):10.2f}x" if stock in p50s else ""
        print(f"{name:13} {p50:8.2f} {p95:8.2f} {ratio:>11} {versus:>11}")
    if opts.trace:
        print("\nmedian arrival after send (ms):")
        for name, kinds in arrivals.items():
            row = ", ".join(
                f"{k} {statistics.median(v):.1f}"
                for k, v in sorted(kinds.items(), key=lambda kv: statistics.median(kv[1]))
            )
            print(f"  {name:13} {row}")


if __name__ == "__main__":
    main()
