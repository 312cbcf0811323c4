"""Run code in a Jupyter kernel over its websocket (legacy JSON message format)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from websockets.sync.client import connect


def execute_request(code: str, session: str) -> dict[str, Any]:
    msg_id = uuid.uuid4().hex
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": session,
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


def run_code(
    ws_url: str, code: str, headers: dict[str, str] | None = None, timeout: float = 60.0
) -> str:
    """Execute ``code``; return the text/plain of its execute_result (or stream output)."""
    session = uuid.uuid4().hex
    with connect(ws_url, additional_headers=headers or {}, open_timeout=timeout) as ws:
        request = execute_request(code, session)
        ws.send(json.dumps(request))
        deadline = time.monotonic() + timeout
        out: list[str] = []
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=deadline - time.monotonic()))
            if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_result":
                return str(msg["content"]["data"]["text/plain"])
            if kind == "stream":
                out.append(msg["content"]["text"])
            if kind == "error":
                raise RuntimeError(f"kernel error: {msg['content']['evalue']}")
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
        raise TimeoutError(f"no result for {code!r} within {timeout}s")
