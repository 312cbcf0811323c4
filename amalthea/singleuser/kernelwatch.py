"""Track each kernel's execution state and last activity from IOPub, cheaply.

Why: jupyter_server's ``MappingKernelManager.start_watching_activity`` subscribes to every
kernel's IOPub with a ZMQStream and fully deserializes each message on the server's event loop
(``Session.deserialize``: HMAC, four ``json.loads``, ISO dates parsed with dateutil; status
messages twice) and logs a debug record for it, which is formatted even when debug logging is
off. A ``1+1`` sends four IOPub messages; profiled in amalthea-singleuser with the fast kernel
and relay, that watcher was about a third of the server's CPU per execution.

What stays the same: the rules. ``kernel.last_activity`` (and the manager's
``last_kernel_activity``) move on every IOPub message whose type or parent's type is tracked
(``track_message_type``, ``untracked_message_types``) or while the kernel is busy, at most
every 0.1 s (a burst of messages is one update; the readers work in seconds);
``kernel.execution_state`` follows status messages answering tracked requests, and leaves
``starting`` for ``idle`` on the first other status. Messages must pass the HMAC and replay
checks, with the watcher's own digest history as jupyter_server's own Session has. The culler,
``GET /api/kernels`` and our activity reporter read those attributes as before.

What is cheaper: the IOPub socket is read with ``loop.add_reader`` on its file descriptor
(draining it until ``EAGAIN``, as ZMQ's edge-triggered descriptor requires) instead of a
ZMQStream; only the header and parent header are parsed, the content only for status messages,
and dates are never parsed. The watcher is stored where jupyter_server keeps its stream
(``kernel._activity_stream``) and offers what ``stop_watching_activity`` uses of one
(``socket``, ``close()``), so stopping, restarts and shutdown go through jupyter_server.

Rejected: reading activity from the websocket relay (a kernel with no browser attached must
still be tracked, and the buffering jupyter_server does between connections would have to be
mirrored); one shared IOPub socket per kernel for the watcher and all websockets (rewrites
jupyter_server's connection lifecycle). Falls back to jupyter_server's watcher when there is no
running asyncio loop, or one that cannot watch file descriptors.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import zmq
from jupyter_client.connect import ConnectionFileMixin
from jupyter_client.session import Session
from jupyter_server._tz import utcnow

from .relay import accept_signature

__all__ = ["IOPubWatcher", "LeanActivityMixin", "enable_lean_activity"]

DELIMITER = b"<IDS|MSG>"
# Messages handled per loop callback; a kernel flooding IOPub must not starve other sockets.
BATCH = 64
# Seconds: activity times move at most this often (see IOPubWatcher.stamp).
RESOLUTION = 0.1


class IOPubWatcher:
    """Reads one kernel's IOPub and updates its activity attributes on the event loop."""

    def __init__(self, manager: Any, kernel: Any, socket: zmq.Socket[Any]) -> None:
        self.manager = manager
        self.kernel = kernel
        self.socket = socket
        # The kernel manager's sockets are zmq.asyncio ones, whose recv returns a Future; a
        # blocking-API shadow of the same socket receives directly. (The asyncio socket only
        # registers itself with the loop on its first await, which never happens.)
        self.receiver: zmq.Socket[bytes] = zmq.Socket.shadow(socket.underlying)
        # A private Session, as jupyter_server's watcher has: its own digest history, so the
        # websocket relays' replay checks do not see these messages twice.
        self.session = Session(config=kernel.session.config, key=kernel.session.key)
        self.loop = asyncio.get_running_loop()
        self.stamped_at = -RESOLUTION
        self.fd: int = socket.fileno()  # ZMQ_FD: readable when the socket's events may have changed
        self.loop.add_reader(self.fd, self.drain)
        # Messages that arrived before add_reader may have consumed the descriptor's edge.
        self.loop.call_soon(self.drain)

    def close(self) -> None:
        if not self.socket.closed:
            self.loop.remove_reader(self.fd)
            self.socket.close(linger=0)

    def drain(self) -> None:
        for _ in range(BATCH):
            if self.socket.closed:
                return
            try:
                frames = self.receiver.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.record(frames)
        self.loop.call_soon(self.drain)  # more may be queued; let other callbacks run first

    def record(self, frames: list[bytes]) -> None:
        try:
            start = frames.index(DELIMITER) + 1
        except ValueError:
            return
        parts = frames[start : start + 5]
        if len(parts) < 5 or not accept_signature(self.session, parts):
            return
        try:
            msg_type = json.loads(parts[1])["msg_type"]
            parent_type = (json.loads(parts[2]) or {}).get("msg_type")
            state = json.loads(parts[4])["execution_state"] if msg_type == "status" else None
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # jupyter_server's watcher would fail on it too
        self.apply(msg_type, parent_type, state)

    def stamp(self) -> None:
        """Set the activity times to now, at most once per :data:`RESOLUTION`.

        Each set is two trait assignments with change notification (~20 µs); a ``1+1``
        sends four IOPub messages within a few milliseconds. Readers (the culler, the hub's
        activity reports, ``GET /api/kernels``) work in seconds to minutes.
        """
        now = self.loop.time()
        if now - self.stamped_at < RESOLUTION:
            return
        self.stamped_at = now
        self.manager.last_kernel_activity = self.kernel.last_activity = utcnow()

    def apply(self, msg_type: str, parent_type: str | None, state: str | None) -> None:
        """jupyter_server's rules (module docstring) for one message."""
        manager, kernel = self.manager, self.kernel
        tracked_parent = manager.track_message_type(parent_type)
        if (
            tracked_parent
            or manager.track_message_type(msg_type)
            or (kernel.execution_state == "busy")
        ):
            self.stamp()
        if state is None:
            return
        if tracked_parent:
            kernel.execution_state = state
        elif kernel.execution_state == "starting" and state != "starting":
            kernel.execution_state = "idle"


class LeanActivityMixin:
    """A MappingKernelManager whose activity watcher is an :class:`IOPubWatcher`."""

    _kernels: dict[str, Any]
    log: Any

    def start_watching_activity(self, kernel_id: str) -> None:
        kernel = self._kernels[kernel_id]
        # The plain socket: the kernel manager's own connect_iopub wraps it in a ZMQStream.
        socket = ConnectionFileMixin.connect_iopub(kernel)
        try:
            watcher = IOPubWatcher(self, kernel, socket)
        except (RuntimeError, NotImplementedError):
            # No running loop, or one without add_reader (Windows' proactor loop).
            socket.close(linger=0)
            super().start_watching_activity(kernel_id)  # type: ignore[misc]
            return
        kernel.reason = ""
        kernel.last_activity = utcnow()
        kernel._activity_stream = watcher


def enable_lean_activity(kernel_manager: Any) -> bool:
    """Give ``kernel_manager`` (already built) the lean watcher; ``False`` if it has no
    jupyter_server activity watching to replace."""
    cls = type(kernel_manager)
    if not callable(getattr(cls, "start_watching_activity", None)):
        return False
    if not issubclass(cls, LeanActivityMixin):
        # A class statement so traitlets' metaclass builds it (see nodelay.with_nodelay). The
        # manager exists before extensions load, so it is re-classed in place rather than
        # configured: the subclass adds no state, only the one method.
        class LeanActivity(LeanActivityMixin, cls):  # type: ignore[misc,valid-type]
            pass

        LeanActivity.__name__ = LeanActivity.__qualname__ = f"LeanActivity{cls.__name__}"
        LeanActivity.__module__ = __name__
        kernel_manager.__class__ = LeanActivity
    return True
