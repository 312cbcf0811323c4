"""The ``v1.kernel.websocket.jupyter.org`` framing (what JupyterLab negotiates) for test clients.

A frame is: the number of offsets n (u64 little-endian), n offsets (u64 LE) from the frame's
start, then the parts they point at: channel, header, parent_header, metadata, content, and any
binary buffers.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["V1", "decode", "encode"]

V1 = "v1.kernel.websocket.jupyter.org"
_KEYS = ("header", "parent_header", "metadata", "content")


def encode(msg: dict[str, Any]) -> bytes:
    parts = [msg["channel"].encode(), *(json.dumps(msg[k]).encode() for k in _KEYS)]
    offsets = [8 * (len(parts) + 2)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = b"".join(n.to_bytes(8, "little") for n in (len(offsets), *offsets))
    return head + b"".join(parts)


def decode(frame: bytes) -> dict[str, Any]:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * i : 8 * i + 8], "little") for i in range(1, count + 1)]
    parts = [frame[a:b] for a, b in zip(offsets, [*offsets[1:], len(frame)], strict=False)]
    msg: dict[str, Any] = {k: json.loads(p) for k, p in zip(_KEYS, parts[1:5], strict=True)}
    msg["channel"] = parts[0].decode()
    msg["buffers"] = parts[5:]
    return msg
