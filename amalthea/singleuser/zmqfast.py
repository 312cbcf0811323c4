"""ZMQ sends and event handling without pyzmq's per-call Python overhead.

Why: since pyzmq 23 its constants are ``enum.Flag`` members, and the Python layer does flag
arithmetic and option lookups on every call: ``send_multipart`` computes ``SNDMORE | flags``
(an enum construction, ~3 µs) per frame, and ``ZMQStream`` reads ``socket.EVENTS`` through
``__getattr__`` (an option-name lookup) and ANDs it with ``POLLIN`` (another enum) at least
twice per message. Measured here: a 7-frame kernel message costs 16.7 µs through
``Socket.send_multipart`` and 2.2 µs through :func:`send_frames`. On the kernel path every
message crosses two processes (kernel, server), which is most of the pyzmq time in a profile of
``1+1``.

:func:`send_frames` is ``send_multipart`` for byte frames with plain-int flags, on pyzmq's own
compiled ``send``. :class:`LeanStream` is a ``ZMQStream`` whose event handling uses int
constants, reads every waiting message in one loop callback (``ZMQStream`` reads one and
schedules another callback for the next), and sends at once when nothing is queued instead of
waiting a loop turn for ``POLLOUT``. Its behaviour is ``ZMQStream``'s: same callbacks, same
order, the queue when the socket would block, same closed-stream handling; anything unusual
(tracking, extra send options, a flush in progress) goes to ``ZMQStream`` itself.

:func:`lean_stream` turns an existing ``ZMQStream`` into a ``LeanStream`` in place, unless
this pyzmq lacks one of the internals it relies on (:func:`missing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq
import zmq.backend
from tornado.log import gen_log
from zmq.eventloop.zmqstream import ZMQStream

__all__ = [
    "LeanQueuedStream",
    "LeanStream",
    "lean_stream",
    "missing",
    "ready_events",
    "send_frames",
]

SNDMORE = int(zmq.SNDMORE)
NOBLOCK = int(zmq.NOBLOCK)
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)

# Messages read per loop callback: a flooding kernel must not starve the other sockets.
BATCH = 32

_base_send = zmq.backend.Socket.send
_getsockopt = zmq.backend.Socket.get


def ready_events(socket: Any) -> int:
    """``socket.EVENTS`` as an int, without the option-name lookup and enum."""
    return int(_getsockopt(socket, EVENTS))


# The ZMQStream attributes LeanStream reads or writes (written against pyzmq 27; a pyzmq
# without one of them keeps its own class, see missing()).
_STREAM_ATTRS = ("_recv_callback", "_send_callback", "_send_queue", "_flushed", "_state")


def missing(stream: Any) -> str | None:
    """``None`` if ``stream`` has the ZMQStream internals LeanStream uses, else the first
    one missing (a pyzmq that changed them keeps its own class)."""
    for name in _STREAM_ATTRS:
        if not hasattr(stream, name):
            return f"ZMQStream.{name}"
    for name in ("_handle_recv", "_handle_send", "_run_callback", "on_send"):
        if not callable(getattr(stream, name, None)):
            return f"ZMQStream.{name}"
    return None


def send_frames(socket: Any, frames: Sequence[Any], flags: int = 0, copy: bool = True) -> None:
    """Send ``frames`` (bytes or buffers) as one message: ``socket.send_multipart`` without
    the enum arithmetic. ``flags`` is an int (``NOBLOCK`` or 0). With ``NOBLOCK`` a
    ``zmq.Again`` can only come from the first frame: ZMQ takes a message whole or not at all.
    """
    last = len(frames) - 1
    more = SNDMORE | flags
    for i, frame in enumerate(frames):
        _base_send(socket, frame, flags if i == last else more, copy)


class LeanStream(ZMQStream):
    """A ``ZMQStream`` with int event handling, batched reads and immediate sends."""

    send_at_once = True

    def send_multipart(  # type: ignore[override]
        self,
        msg_parts: Sequence[Any],
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        callback: Any = None,
        **kwargs: Any,
    ) -> None:
        socket = self.socket
        if (
            not self.send_at_once
            or socket is None
            or track
            or kwargs
            or self._flushed
            or not self._send_queue.empty()
        ):
            # Closed (ZMQStream raises), tracked, or behind queued messages: ZMQStream's way.
            super().send_multipart(msg_parts, flags, copy, track, callback, **kwargs)
            return
        try:
            send_frames(socket, msg_parts, int(flags) | NOBLOCK, copy)
        except zmq.Again:
            # Would block (no peer yet, or at the high-water mark): queue it, as ZMQStream
            # does, and let the loop send it when the socket becomes writable.
            super().send_multipart(msg_parts, flags, copy, track, callback, **kwargs)
            return
        except zmq.ZMQError as e:
            gen_log.error("SEND Error: %s", e)  # as ZMQStream reports it
            status: Any = e  # and passes it to the send callback too
        else:
            status = None
        # ZMQStream installs the callback (or a no-op) on every send; keep that state.
        callback = callback or self._send_callback
        self.on_send(callback if callback is not None else _ignore)
        if callback is not None:
            self._run_callback(callback, msg_parts, status)
        # Sending may have consumed the edge of the socket's descriptor: look again.
        self._update_handler(self._state)

    def _handle_events(self, fd: Any, events: int) -> None:
        socket = self.socket
        if socket is None or socket.closed:
            super()._handle_events(fd, events)  # type: ignore[no-untyped-call]
            return
        try:
            ready = ready_events(socket)
        except zmq.ZMQError:
            super()._handle_events(fd, events)  # type: ignore[no-untyped-call]
            return
        if ready & POLLIN and self._recv_callback is not None:
            for _ in range(BATCH):
                self._handle_recv()  # type: ignore[no-untyped-call]
                socket = self.socket
                if socket is None:
                    return
                if self._recv_callback is None or self._flushed:
                    break
                ready = ready_events(socket)
                if not ready & POLLIN:
                    break
        if ready & POLLOUT and not self._send_queue.empty():
            self._handle_send()  # type: ignore[no-untyped-call]
            if self.socket is None:
                return
        self._rebuild_io_state()

    def _rebuild_io_state(self) -> None:
        if self.socket is None:
            return
        state = 0
        if self._recv_callback is not None:
            state |= POLLIN
        if not self._send_queue.empty():
            state |= POLLOUT
        self._state = state
        self._update_handler(state)

    def _update_handler(self, state: int) -> None:
        socket = self.socket
        if socket is None:
            return
        if int(state) & ready_events(socket):
            # Events the edge-triggered descriptor will not announce again: handle them in a
            # callback, as ZMQStream does.
            self.io_loop.add_callback(self._handle_events, socket, 0)


class LeanQueuedStream(LeanStream):
    """A :class:`LeanStream` whose sends wait for the loop, as ``ZMQStream``'s do (for
    owners that rely on replies leaving only when they flush the stream)."""

    send_at_once = False


def _ignore(*args: Any) -> None:
    pass


def lean_stream(stream: Any, send_at_once: bool = True) -> Any:
    """Make ``stream`` (a plain, open ``ZMQStream``) a :class:`LeanStream` in place (a
    :class:`LeanQueuedStream` without ``send_at_once``); other objects, subclasses included,
    are returned unchanged."""
    if type(stream) is not ZMQStream or stream.closed() or missing(stream) is not None:
        return stream
    stream.__class__ = LeanStream if send_at_once else LeanQueuedStream
    # ZMQStream registered its bound _handle_events with the loop when it was built; register
    # ours in its place (the descriptor is edge-triggered, so look for missed events too).
    loop, socket = stream.io_loop, stream.socket
    loop.remove_handler(socket)
    loop.add_handler(socket, stream._handle_events, loop.READ)
    stream._rebuild_io_state()  # type: ignore[no-untyped-call]
    return stream
