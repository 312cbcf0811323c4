"""The benchmark's client: only the public HTTP interfaces of a JupyterHub-6-compatible hub.

REST API with an API token, the login form (GET + POST with ``_xsrf``), the spawn progress
stream, and a single-user server's REST API and kernel WebSocket through the proxy. aiohttp
is used for HTTP because the client shares two cores with the hub: it costs a fraction of
what httpx costs per request, so it disturbs the measurement less.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import procstat
from websockets.asyncio.client import connect as ws_connect

PAGINATION = "application/jupyterhub-pagination+json"
XSRF_INPUT = re.compile(r"<input[^>]*name=[\"']_xsrf[\"'][^>]*>", re.I)
VALUE = re.compile(r"value=[\"']([^\"']*)[\"']")


class BenchError(Exception):
    """A step failed: the message names the request and what came back."""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def session(limit: int = 100) -> aiohttp.ClientSession:
    # Idle connections are dropped before the proxies drop them (CHP and amalthea-proxy close
    # after 5 s idle): reusing one they just closed fails a POST with "Can not write request
    # body" (it killed the spawn_1 phase of both hubs after the bare-start pause).
    conn = aiohttp.TCPConnector(limit=limit, force_close=False, keepalive_timeout=2)
    timeout = aiohttp.ClientTimeout(total=900)
    return aiohttp.ClientSession(connector=conn, timeout=timeout,
                                 cookie_jar=aiohttp.DummyCookieJar())  # fmt: skip


@dataclass
class Api:
    """REST calls under ``<base>/hub/api`` with one token."""

    http: aiohttp.ClientSession
    base: str
    token: str = ""

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Authorization": f"token {self.token}"} if self.token else {}
        return {**h, **(extra or {})}

    async def call(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200,),
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        url = f"{self.base}/hub/api{path}"
        async with self.http.request(method, url, json=body, headers=self.headers(headers),
                                     allow_redirects=False) as r:  # fmt: skip
            raw = await r.read()
            if r.status not in ok:
                raise BenchError(f"{method} /hub/api{path} -> {r.status}: {raw[:300]!r}")
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError as e:
                raise BenchError(
                    f"{method} /hub/api{path} -> {r.status}, not JSON: {raw[:200]!r}"
                ) from e

    async def status(self, method: str, path: str, headers: dict[str, str] | None = None) -> int:
        """Status only, body drained: the cheapest possible request for load phases."""
        async with self.http.request(method, f"{self.base}/hub/api{path}",
                                     headers=self.headers(headers), allow_redirects=False) as r:  # fmt: skip
            await r.read()
            return r.status


# -- load ------------------------------------------------------------------------------------
@dataclass
class Load:
    n: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.n if self.n else float("nan")

    def summary(self) -> dict[str, float]:
        ms = [1000 * x for x in self.latencies]
        return {"n": self.n, "errors": self.errors, "rate": self.rate, "cpu_ms": self.cpu_ms,
                "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95)}  # fmt: skip


async def load(one: Callable[[int], Awaitable[bool]], concurrency: int, duration: float,
               hub_pid: int) -> Load:  # fmt: skip
    """Run ``one(i)`` from ``concurrency`` workers for ``duration`` s; count, time, hub CPU."""
    out = Load()
    end = time.monotonic() + duration

    async def worker(w: int) -> None:
        i = w
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                good = await one(i)
            except Exception as e:  # a failed request is a figure, not a crash
                good = False
                out.first_error = out.first_error or repr(e)[:300]
            if good:
                out.n += 1
                out.latencies.append(time.perf_counter() - t)
            else:
                out.errors += 1
            i += concurrency

    cpu0, t0 = procstat.cpu_seconds(hub_pid), time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    out.seconds = time.monotonic() - t0
    out.cpu = procstat.cpu_seconds(hub_pid) - cpu0
    return out


# -- login form ------------------------------------------------------------------------------
def xsrf_from(html: str) -> str:
    tag = XSRF_INPUT.search(html)
    value = VALUE.search(tag.group(0)) if tag else None
    if value is None:
        raise BenchError("the login page has no <input name=_xsrf value=...>")
    return value.group(1)


async def form_login(http: aiohttp.ClientSession, base: str, user: str, password: str) -> bool:
    """GET /hub/login, POST it back with _xsrf; True when a login cookie comes back."""
    http.cookie_jar.clear()
    async with http.get(f"{base}/hub/login", allow_redirects=False) as r:
        html = await r.text()
        if r.status != 200:
            raise BenchError(f"GET /hub/login -> {r.status}")
    form = {"username": user, "password": password, "_xsrf": xsrf_from(html)}
    async with http.post(f"{base}/hub/login", data=form, allow_redirects=False) as r:
        await r.read()
        if r.status != 302:
            raise BenchError(f"POST /hub/login as {user} -> {r.status}")
        if "/hub/login" in r.headers.get("Location", ""):
            raise BenchError(f"POST /hub/login as {user} redirected back to the login page")
        return bool(r.cookies)


def login_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 timeout=aiohttp.ClientTimeout(total=120))  # fmt: skip


# -- spawn / stop ----------------------------------------------------------------------------
async def spawn(api: Api, user: str) -> float:
    """POST .../server, then the progress stream until ready; seconds to ready."""
    t0 = time.perf_counter()
    st, _ = await api.call("POST", f"/users/{user}/server", {}, ok=(201, 202))
    if st == 202:
        await _wait_ready(api, user)
    return time.perf_counter() - t0


async def _wait_ready(api: Api, user: str) -> None:
    url = f"{api.base}/hub/api/users/{user}/server/progress"
    try:
        async with api.http.get(url, headers=api.headers({"Accept": "text/event-stream"})) as r:
            if r.status != 200:
                raise BenchError(f"GET progress for {user} -> {r.status}")
            async for raw in r.content:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise BenchError(f"spawn of {user} failed: {event.get('message')}")
                if event.get("ready"):
                    return
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
        pass
    # the stream ended without a verdict: ask the REST API until it has one
    while True:
        _, model = await api.call("GET", f"/users/{user}/server")
        if model.get("ready"):
            return
        if not model.get("pending"):
            raise BenchError(f"spawn of {user} ended neither ready nor pending: {model}")
        await asyncio.sleep(0.05)


async def stop(api: Api, user: str) -> float:
    t0 = time.perf_counter()
    st, _ = await api.call("DELETE", f"/users/{user}/server", ok=(202, 204))
    while st == 202:
        await asyncio.sleep(0.05)
        _, model = await api.call("GET", f"/users/{user}")
        if not model.get("servers") and not model.get("pending"):
            break
    return time.perf_counter() - t0


# -- through the proxy: single-user REST and the kernel WebSocket ----------------------------
def _msg(msg_type: str, content: dict[str, Any], session_id: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    msg = {
        "header": {"msg_id": msg_id, "username": "bench", "session": session_id,
                   "msg_type": msg_type, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
        "buffers": [],
    }  # fmt: skip
    return msg_id, json.dumps(msg)


async def _until(ws: Any, parent: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("parent_header", {}).get("msg_id") == parent and done(msg):
            return msg


async def kernel_e2e(http: aiohttp.ClientSession, base: str, user: str, token: str,
                     rounds: int) -> dict[str, Any]:  # fmt: skip
    """First request, kernel start, then ``rounds`` times ``1+1`` over the kernel WebSocket."""
    h = {"Authorization": f"token {token}"}
    prefix = f"{base}/user/{user}"
    out: dict[str, Any] = {}
    t = time.perf_counter()
    async with http.get(f"{prefix}/api/status", headers=h, allow_redirects=False) as r:
        await r.read()
        if r.status != 200:
            raise BenchError(f"GET /user/{user}/api/status through the proxy -> {r.status}")
    out["first_request_ms"] = 1000 * (time.perf_counter() - t)
    t0 = time.perf_counter()
    async with http.post(f"{prefix}/api/kernels", json={"name": "python3"}, headers=h) as r:
        body = await r.read()
        if r.status != 201:
            raise BenchError(f"POST /user/{user}/api/kernels -> {r.status}: {body[:200]!r}")
        kernel_id = json.loads(body)["id"]
    out["kernel_post_ms"] = 1000 * (time.perf_counter() - t0)
    ws_url = prefix.replace("http://", "ws://", 1) + f"/api/kernels/{kernel_id}/channels"
    sid = uuid.uuid4().hex
    async with ws_connect(ws_url, additional_headers=h, max_size=None, compression=None,
                          open_timeout=120) as ws:  # fmt: skip
        out["ws_handshake_ms"] = 1000 * (time.perf_counter() - t0)
        mid, raw = _msg("kernel_info_request", {}, sid)
        await ws.send(raw)
        await _until(ws, mid, lambda m: m["msg_type"] == "kernel_info_reply")
        out["kernel_start_ms"] = 1000 * (time.perf_counter() - t0)
        rtts = []
        for i in range(rounds + 1):
            mid, raw = _msg("execute_request", {"code": "1+1", "silent": False,
                                                 "store_history": False, "user_expressions": {},
                                                 "allow_stdin": False, "stop_on_error": True}, sid)  # fmt: skip
            t = time.perf_counter()
            await ws.send(raw)
            res = await _until(ws, mid, lambda m: m["msg_type"] in ("execute_result", "error"))
            rtt = 1000 * (time.perf_counter() - t)
            if res["msg_type"] != "execute_result" or res["content"]["data"]["text/plain"] != "2":
                raise BenchError(f"1+1 gave {res['msg_type']}: {res['content']}")
            await _until(ws, mid, lambda m: m["msg_type"] == "status"
                         and m["content"]["execution_state"] == "idle")  # fmt: skip
            if i == 0:
                out["first_exec_ms"] = rtt
            else:
                rtts.append(rtt)
    out["rtt_p50_ms"], out["rtt_p95_ms"] = pct(rtts, 50), pct(rtts, 95)
    async with http.delete(f"{prefix}/api/kernels/{kernel_id}", headers=h) as r:
        await r.read()
    return out
