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

Falls back to jupyter_server for anything unusual: binary buffers, a non-JSON session packer,
another protocol version, tracebacks hidden by ``allow_tracebacks=False``, frames that are not
UTF-8. Bad signatures also go to jupyter_server, which rejects them as before.
"""

from __future__ import annotations

import json
from hmac import compare_digest
from typing import Any

from .mixins import with_mixin

__all__ = ["FastRelayMixin", "accept_signature", "legacy_text", "with_fast_relay"]

V1 = "v1.kernel.websocket.jupyter.org"
JSON_PACKERS = frozenset({"json", "orjson"})  # jupyter_client picks orjson when installed


def legacy_text(session: Any, parts: list[Any], channel: str | None) -> str | None:
    """The legacy websocket text for a kernel message, or ``None`` to let jupyter_server do it.

    ``parts`` is the message after its routing identities: signature, header, parent header,
    metadata, content, buffers.
    """
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
    return text if accept_signature(session, frames) else None


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
    """Kernel websocket connection whose legacy-framing replies skip the decode/encode."""

    subprotocol: str | None
    session: Any
    channels: dict[str, Any]
    multi_kernel_manager: Any
    log: Any

    def handle_outgoing_message(self, stream: Any, outgoing_msg: list[Any]) -> None:
        if self.subprotocol == V1 or not self.multi_kernel_manager.allow_tracebacks:
            super().handle_outgoing_message(stream, outgoing_msg)  # type: ignore[misc]
            return
        _, parts = self.session.feed_identities(outgoing_msg)
        if isinstance(stream, str):
            stream = self.channels[stream]
        channel = getattr(stream, "channel", None)
        text = legacy_text(self.session, parts, channel)
        if text is None:
            super().handle_outgoing_message(stream, outgoing_msg)  # type: ignore[misc]
            return
        # As jupyter_server does for v1: both hooks parse the frames they need lazily.
        msg: dict[str, Any] = {"header": None, "parent_header": None, "content": None}
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
        super().write_message(message, binary=binary)  # type: ignore[misc]
