"""The spliced legacy relay (amalthea/singleuser/relay.py) says what jupyter_server would say.

Real jupyter_client Sessions sign and serialize real messages; the expected text is
jupyter_server's own recipe (``Session.deserialize`` then ``json.dumps(..., default=
json_default)``, as in ``ZMQChannelsWebsocketConnection._reserialize_reply``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session

from amalthea.singleuser.relay import legacy_text

KEY = b"relay-test-key"


def frames(msg_type: str, content: dict[str, Any], **kw: Any) -> list[bytes]:
    sender = Session(key=KEY, username="kernel")
    parent = sender.msg("execute_request", {"code": "1+1"})
    msg = sender.msg(msg_type, content, parent=parent, **kw)
    return fed(sender, sender.serialize(msg))


def fed(session: Session, wire: list[bytes]) -> list[bytes]:
    """The frames after the routing identities and delimiter, as the relay receives them."""
    return [f if isinstance(f, bytes) else f.bytes for f in session.feed_identities(wire)[1]]


def stock_text(parts: list[bytes], channel: str) -> dict[str, Any]:
    msg = Session(key=KEY).deserialize(parts)
    msg["channel"] = channel
    decoded: dict[str, Any] = json.loads(json.dumps(msg, default=json_default))
    return decoded


def same_dates(a: dict[str, Any], b: dict[str, Any]) -> None:
    for part in ("header", "parent_header"):
        if "date" in a[part]:
            assert datetime.fromisoformat(a[part].pop("date")) == datetime.fromisoformat(
                b[part].pop("date")
            )


@pytest.mark.parametrize(
    ("msg_type", "content"),
    [
        ("status", {"execution_state": "busy"}),
        ("stream", {"name": "stdout", "text": 'héllo ✓ \u2028 "quoted" \\ back\n'}),
        ("execute_result", {"data": {"text/plain": "2"}, "metadata": {}, "execution_count": 3}),
        ("error", {"ename": "ZeroDivisionError", "evalue": "x", "traceback": ["\x1b[31ma"]}),
        ("comm_msg", {"comm_id": "c", "data": {"nested": [1, 2.5, None, True, {"k": []}]}}),
    ],
)
def test_splice_equals_jupyter_servers_text(msg_type: str, content: dict[str, Any]) -> None:
    parts = frames(msg_type, content)
    text = legacy_text(Session(key=KEY), parts, "iopub")
    assert text is not None
    ours, theirs = json.loads(text), stock_text(parts, "iopub")
    same_dates(ours, theirs)
    assert ours == theirs
    assert list(ours) == list(theirs)  # same keys, same order


def test_bad_or_replayed_signature_goes_to_jupyter_server() -> None:
    parts = frames("status", {"execution_state": "idle"})
    assert legacy_text(Session(key=b"another key"), parts, "iopub") is None
    session = Session(key=KEY)
    assert legacy_text(session, parts, "iopub") is not None
    assert legacy_text(session, parts, "iopub") is None  # replay


def test_unusual_messages_go_to_jupyter_server() -> None:
    sender = Session(key=KEY)
    with_buffers = fed(sender, sender.serialize(sender.msg("comm_msg", {})))
    with_buffers.append(b"\x00binary")
    assert legacy_text(Session(key=KEY), with_buffers, "iopub") is None
    old = sender.msg("status", {"execution_state": "idle"})
    old["header"]["version"] = "4.1"
    assert legacy_text(Session(key=KEY), fed(sender, sender.serialize(old)), "iopub") is None
