"""A scripted browser session against a running hub, over plain HTTP (httpx + websockets).

Used by end-to-end tests and benchmarks: log in with the form (XSRF and cookies as a browser
does), start a server and follow the progress stream, open a kernel through the proxy and run
code over its WebSocket.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx

from amalthea.testing import kernel_v1

__all__ = ["HubSession", "run_code"]

_XSRF_ATTR = re.compile(r'data-xsrf="([^"]*)"')
_XSRF_INPUT = re.compile(r'name="_xsrf" value="([^"]*)"')


class HubSession:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)
        self.xsrf = ""
        self.name = ""

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HubSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- login -------------------------------------------------------------------------
    def login_form(self) -> str:
        r = self.client.get("/hub/login")
        m = _XSRF_INPUT.search(r.text)
        assert m, f"no _xsrf in login form ({r.status_code})"
        return m.group(1)

    def login(self, name: str, password: str = "pw", **extra: str) -> httpx.Response:  # noqa: S107
        xsrf = self.login_form()
        r = self.client.post(
            "/hub/login", data={"username": name, "password": password, "_xsrf": xsrf, **extra}
        )
        if r.status_code == 302:
            self.name = name
            self.refresh_xsrf()
        return r

    def refresh_xsrf(self) -> str:
        r = self.client.get("/hub/home")
        m = _XSRF_ATTR.search(r.text)
        self.xsrf = m.group(1) if m else ""
        return self.xsrf

    def logout(self) -> httpx.Response:
        return self.client.get("/hub/logout")

    # ---- API with the browser's cookie ---------------------------------------------------
    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"X-XSRFToken": self.xsrf, **kw.pop("headers", {})}
        return self.client.request(method, "/hub/api" + path, headers=headers, **kw)

    def start_server(self, server: str = "", timeout: float = 120) -> list[dict[str, Any]]:
        path = f"/users/{self.name}/" + (f"servers/{server}" if server else "server")
        r = self.api("POST", path)
        assert r.status_code in (201, 202), (r.status_code, r.text)
        return self.progress(server, timeout)

    def progress(self, server: str = "", timeout: float = 120) -> list[dict[str, Any]]:
        path = f"/users/{self.name}/" + (f"servers/{server}" if server else "server")
        events: list[dict[str, Any]] = []
        with self.client.stream(
            "GET", f"/hub/api{path}/progress", params={"_xsrf": self.xsrf}, timeout=timeout
        ) as r:
            if r.status_code != 200:
                r.read()
                raise AssertionError(f"progress: {r.status_code} {r.text}")
            for line in r.iter_lines():
                if line.startswith("data:"):
                    ev = json.loads(line[5:])
                    events.append(ev)
                    if ev.get("ready") or ev.get("failed"):
                        break
        return events

    def stop_server(self, server: str = "") -> httpx.Response:
        path = f"/users/{self.name}/" + (f"servers/{server}" if server else "server")
        return self.api("DELETE", path)

    def open_server(self, path: str = "api/status") -> httpx.Response:
        """GET a server URL the way a browser does: OAuth redirects followed, cookies kept."""
        return self.client.get(f"/user/{self.name}/{path}", follow_redirects=True)


def _ws_url(http_url: str) -> str:
    return "ws" + http_url.removeprefix("http")


def run_code(
    base_url: str,
    user_prefix: str,
    headers: dict[str, str],
    code: str = "1+1",
    timeout: float = 60.0,
    kernel_id: str | None = None,
    protocol: str | None = None,
) -> tuple[str, str]:
    """Start (or reuse) a kernel under ``user_prefix`` and execute ``code``.

    Returns (kernel_id, text/plain of the execute_result). Synchronous (websockets sync client).
    ``protocol``: a websocket subprotocol to ask for, e.g. ``kernel_v1.V1`` (JupyterLab's binary
    framing); default the legacy JSON text framing.
    """  # fmt: skip
    from websockets.sync.client import connect

    with httpx.Client(base_url=base_url, timeout=timeout) as c:
        if kernel_id is None:
            r = c.post(f"{user_prefix}api/kernels", headers=headers, json={"name": "python3"})
            assert r.status_code == 201, (r.status_code, r.text)
            kernel_id = r.json()["id"]
    url = _ws_url(base_url) + f"{user_prefix}api/kernels/{kernel_id}/channels"
    subprotocols: Any = [protocol] if protocol else None
    with connect(url, additional_headers=headers, open_timeout=timeout,
                 subprotocols=subprotocols) as ws:  # fmt: skip
        if ws.subprotocol != protocol:
            raise AssertionError(f"asked for subprotocol {protocol}, got {ws.subprotocol}")
        return kernel_id, execute(ws, code, timeout)


def execute(ws: Any, code: str, timeout: float = 60.0) -> str:
    msg_id = uuid.uuid4().hex
    v1 = getattr(ws, "subprotocol", None) == kernel_v1.V1
    ws.send((kernel_v1.encode if v1 else json.dumps)({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))  # fmt: skip
    deadline = time.monotonic() + timeout
    result, replied, idle = "", False, False
    while time.monotonic() < deadline:
        frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        msg = kernel_v1.decode(frame) if isinstance(frame, bytes) else json.loads(frame)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg.get("msg_type") or msg["header"]["msg_type"]
        if kind == "execute_result":
            result = str(msg["content"]["data"]["text/plain"])
        elif kind == "stream":
            result += str(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError(f"kernel error: {msg['content'].get('ename')}")
        elif kind == "execute_reply":
            replied = True
        elif kind == "status" and msg["content"].get("execution_state") == "idle":
            idle = True
        if replied and idle:  # both the shell reply and the end of output have arrived
            return result.rstrip("\n")
    raise TimeoutError(f"no result for {code!r} within {timeout} s")
