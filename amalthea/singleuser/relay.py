"""Relay kernel messages to legacy (JSON text) websockets without decoding and re-encoding them.

Why: for the legacy framing jupyter_server turns every kernel message into a dict
(``Session.deserialize``: four ``json.loads``, ISO dates parsed into datetimes) and back into
text (``json.dumps``, dates formatted again). Profiled in amalthea-singleuser, that was most of
the 5.6 ms of server CPU per ``1+1`` with the fast kernel (benchmarks/README.md).

How: the frames the kernel sent already are JSON. After the same checks ``deserialize`` makes
(HMAC signature, replay history, protocol major version), :func:`legacy_text` splices them
into the text jupyter_server would have produced: the same keys, the kernel's own JSON for
each part (dates keep the kernel's spelling rather than being re-formatted, non-ASCII text stays
UTF-8 instead of ``\\uXXXX`` escapes: equal after ``JSON.parse``). Rate limiting and the error
hook run as for jupyter_server's v1 framing, which passes them the frames too.

The connection's ZMQ streams become :class:`~.zmqfast.LeanStream` (see zmqfast.py), and each
websocket frame is written straight to tornado's stream: tornado's ``write_message`` wraps every
write in an asyncio task (a coroutine, a task and a loop step per kernel message) only so that
its future can report ``WebSocketClosedError``, a future the relay never awaits.

Falls back to jupyter_server for anything unusual: binary buffers, a non-JSON session packer,
another protocol version, tracebacks hidden by ``allow_tracebacks=False``, frames that are not
UTF-8. Bad signatures also go to jupyter_server, which rejects them as before.
"""

from __future__ import annotations

import json
from hmac import compare_digest
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketProtocol13

from .mixins import with_mixin
from .zmqfast import lean_stream

__all__ = [
    "FastRelayMixin",
    "accept_signature",
    "legacy_message",
    "legacy_text",
    "with_fast_relay",
]

V1 = "v1.kernel.websocket.jupyter.org"
JSON_PACKERS = frozenset({"json", "orjson"})  # jupyter_client picks orjson when installed


def legacy_text(session: Any, parts: list[Any], channel: str | None) -> str | None:
    """The legacy websocket text for a kernel message, or ``None`` to let jupyter_server do it.

    ``parts`` is the message after its routing identities: signature, header, parent header,
    metadata, content, buffers.
    """
    spliced = legacy_message(session, parts, channel)
    return None if spliced is None else spliced[0]


def legacy_message(
    session: Any, parts: list[Any], channel: str | None
) -> tuple[str, dict[str, Any]] | None:
    """:func:`legacy_text` and the message's parsed header, or ``None``."""
    if len(parts) != 5 or session.packer not in JSON_PACKERS:
        return None
    frames = [p if isinstance(p, bytes) else bytes(p) for p in parts]
    _, header, parent, metadata, content = frames
    try:
        head = json.loads(header)
        if not str(head.get("version", "")).startswith("5."):
            return None  # jupyter_client would adapt it to the current protocol
        text = (
            b'{"header":' + header + b',"msg_id":' + json.dumps(head["msg_id"]).encode()
            + b',"msg_type":' + json.dumps(head["msg_type"]).encode()
            + b',"parent_header":' + parent + b',"metadata":' + metadata
            + b',"content":' + content + b',"buffers":[],"channel":'
            + json.dumps(channel).encode() + b"}"
        ).decode("utf-8")  # fmt: skip
    except (ValueError, KeyError, AttributeError):
        return None
    # On failure jupyter_server repeats the checks and reports.
    return (text, head) if accept_signature(session, frames) else None


def accept_signature(session: Any, frames: list[bytes]) -> bool:
    """``Session.deserialize``'s checks on ``frames`` (signature, header, parent, metadata,
    content): a valid HMAC not seen before; remembered, so a replay is refused."""
    if session.auth is None:
        return True
    signature = frames[0]
    if not signature or signature in session.digest_history:
        return False
    if not compare_digest(signature, session.sign(frames[1:5])):
        return False
    session._add_digest(signature)
    return True


def with_fast_relay(cls: type) -> type:
    """``cls`` (a kernel websocket connection class) with :class:`FastRelayMixin` in front."""
    return with_mixin(FastRelayMixin, cls, "FastRelay", __name__)


class FastRelayMixin:
    """Kernel websocket connection whose legacy-framing replies skip the decode/encode, whose
    ZMQ streams are :class:`~.zmqfast.LeanStream`, and whose websocket writes skip tornado's
    per-message task."""

    subprotocol: str | None
    session: Any
    channels: dict[str, Any]
    multi_kernel_manager: Any
    websocket_handler: Any
    log: Any

    def create_stream(self) -> None:
        super().create_stream()  # type: ignore[misc]
        for stream in self.channels.values():
            lean_stream(stream)

    def handle_outgoing_message(self, stream: Any, outgoing_msg: list[Any]) -> None:
        if self.subprotocol == V1 or not self.multi_kernel_manager.allow_tracebacks:
            super().handle_outgoing_message(stream, outgoing_msg)  # type: ignore[misc]
            return
        _, parts = self.session.feed_identities(outgoing_msg)
        if isinstance(stream, str):
            stream = self.channels[stream]
        channel = getattr(stream, "channel", None)
        spliced = legacy_message(self.session, parts, channel)
        if spliced is None:
            super().handle_outgoing_message(stream, outgoing_msg)  # type: ignore[misc]
            return
        text, header = spliced
        # As jupyter_server does for v1: both hooks parse the frames they need lazily; the
        # header is already parsed.
        msg: dict[str, Any] = {"header": header, "parent_header": None, "content": None}
        if self._limit_rate(channel, msg, parts[1:]):
            return
        if stream.closed():
            self.log.warning("zmq message arrived on closed channel")
            self.disconnect()
            return
        try:
            self.write_message(text)
        except Exception as exc:  # WebSocketClosedError, as jupyter_server logs it
            self.log.warning(str(exc))

    # Provided by jupyter_server's ZMQChannelsWebsocketConnection.
    def _limit_rate(self, channel: Any, msg: dict[str, Any], msg_list: list[Any]) -> bool:
        return bool(super()._limit_rate(channel, msg, msg_list))  # type: ignore[misc]

    def disconnect(self) -> None:
        super().disconnect()  # type: ignore[misc]

    # Every framing goes through here: jupyter_server's own v1 path passes binary=True.
    def write_message(self, message: str | bytes, binary: bool = False) -> None:
        conn = getattr(self.websocket_handler, "ws_connection", None)
        if type(conn) is not WebSocketProtocol13 or conn._compressor is not None:
            super().write_message(message, binary=binary)  # type: ignore[misc]
            return
        # tornado's write_message wraps each frame's write in a task so that its future
        # reports WebSocketClosedError; nobody awaits it here, and IOStream already marks a
        # failed write's future as retrieved. The frame and the byte count are tornado's.
        if conn.is_closing():
            raise WebSocketClosedError()
        data = message.encode() if isinstance(message, str) else message
        conn._message_bytes_out += len(data)
        try:
            conn._write_frame(True, 0x2 if binary else 0x1, data)
        except StreamClosedError as exc:
            raise WebSocketClosedError() from exc
