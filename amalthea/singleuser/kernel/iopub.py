"""IOPub messages sent by the thread that makes them, not handed to the IOPub thread.

Why: stock ipykernel queues every IOPub message for its IOPub thread (a deque, then a wake-up
through an inproc socket), and that thread, a tornado loop, sends it. To run it must take the
GIL from the main thread, which is busy executing the cell, so it waits until the main thread
blocks or the interpreter's switch interval (5 ms) forces a switch. Measured on ``1+1``: each
message spends about 3.8 ms between creation and arrival, most of the round trip.

How: :class:`DirectIOPubThread` keeps ipykernel's thread (stream flush timers, output piped
from forked children, XPUB subscriptions) but lets any thread send on the socket itself, under
:attr:`~DirectIOPubThread.socket_lock`. Invariants:

- One user at a time: every use of the IOPub socket holds ``socket_lock`` — direct sends, the
  IOPub thread's queued events, the subscription reader that replaces ipykernel's ZMQStream. A
  lock is also the memory barrier ZMQ requires when a socket moves between threads.
- Order is the order of ``send_multipart`` calls: a thread sends directly only if the event
  queue is empty (or it is the IOPub thread, running the oldest event). The IOPub thread pops
  and runs each event under the lock, so an empty queue seen under the lock means everything
  queued earlier has been sent. Otherwise the message is queued behind the rest, as stock.
- No lost subscriptions: the socket's FD is edge-triggered and any operation on the socket,
  sends included, may consume its readiness. After each send we look at ``EVENTS`` and, if a
  subscription is waiting, wake the IOPub thread to read it.
- No half-sent messages: the main thread sends directly only while no signal handler can raise
  (see sigint.py); otherwise it queues. Its whole decision runs under the shield too, and we
  never call ``Thread.is_alive()`` on the way (a Ctrl-C inside it marks the live IOPub thread
  dead on Python 3.11, after which ipykernel sends unguarded from the main thread; found by
  tests/singleuser/test_fast_kernel.py, and stock ipykernel is exposed to it as well).
- Forks: a forked child has no IOPub thread; it keeps ipykernel's path (pipe to the parent).

:class:`DirectOutStream` (``sys.stdout``/``sys.stderr``) flushes on the calling thread by the
same rule instead of a handshake with the IOPub thread (two thread switches per stream, and the
kernel flushes both streams twice per request), and arms its flush timer with ``add_callback``
instead of through the event queue, so that printing does not divert later messages to the
slow path.

Sends use :func:`~amalthea.singleuser.zmqfast.send_frames` (pyzmq's send without its enum
arithmetic, see zmqfast.py), and "am I a forked child?" is a flag set by a fork hook instead of
an ``os.getpid()`` system call per send.

Rejected: a lock-free direct send (the hack ``IOPubThread.schedule = lambda f: f()``): ZMQ
sockets are not thread-safe, the subscription reader shares the socket, and timer callbacks
would run on the wrong loop. Lowering ``sys.setswitchinterval``: changes user-visible
interpreter behaviour and still leaves one thread switch per message.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import nullcontext
from typing import Any

import zmq
from ipykernel.iostream import IOPubThread, OutStream

from ..zmqfast import POLLIN, ready_events, send_frames
from .sigint import SHIELD, main_thread_may_send, on_main_thread

__all__ = ["DirectIOPubThread", "DirectOutStream", "supported"]

# The ipykernel internals we override or call (present from 6.29 to 7.x).
_REQUIRED = {
    IOPubThread: ("_handle_event", "_really_send", "_is_master_process", "schedule"),
    OutStream: ("_flush", "_schedule_flush", "_is_master_process"),
}


def supported() -> str | None:
    """``None`` if this ipykernel has the internals we build on, else the first one missing."""
    for cls, names in _REQUIRED.items():
        for name in names:
            if not callable(getattr(cls, name, None)):
                return f"ipykernel.iostream.{cls.__name__}.{name}"
    return None


class DirectIOPubThread(IOPubThread):
    """ipykernel's IOPub thread, but messages are sent by their sender when order allows."""

    def __init__(self, socket: zmq.Socket[Any], pipe: bool = False, session: Any = None) -> None:
        # Before super().__init__: it sets up the subscription reader, which uses the lock.
        self.socket_lock = threading.RLock()
        self._xpub = False
        self.io_running = False
        self.forked = False  # set in a forked child: ipykernel's os.getpid() test, per send
        os.register_at_fork(after_in_child=self._after_fork)
        super().__init__(socket, pipe=pipe, session=session)

    def _after_fork(self) -> None:
        # The lock may have been held by a thread that does not exist in the child.
        self.socket_lock = threading.RLock()
        self.io_running = False
        self.forked = True

    def _is_master_process(self) -> bool:
        return not self.forked

    # --- liveness without Thread.is_alive() ------------------------------------------------
    # ipykernel asks self.thread.is_alive() before every send. On Python 3.11 a Ctrl-C that
    # lands inside is_alive() makes it release the *running* thread's state lock and mark the
    # thread stopped for good (threading._wait_for_tstate_lock's cleanup); from then on every
    # send takes the no-thread path, unguarded, on the main thread. We keep our own flag,
    # written only when the thread starts and ends.

    def start(self) -> None:
        self.io_running = True
        try:
            super().start()
        except BaseException:
            self.io_running = False
            raise

    def _thread_main(self) -> None:
        try:
            super()._thread_main()
        finally:
            self.io_running = False

    def schedule(self, f: Any) -> None:
        if self.io_running:
            self._events.append(f)
            self._event_pipe.send(b"")  # wake the thread; the content is ignored
        elif on_main_thread():
            # No thread (before start, after stop, in a forked child): run here, shielded.
            SHIELD.enter()
            try:
                f()
            finally:
                SHIELD.leave()
        else:
            f()

    # --- sending --------------------------------------------------------------------------

    def on_io_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def run_here(self, fn: Any, *args: Any, **kwargs: Any) -> bool:
        """Call ``fn`` on this thread, holding the socket, if order and signals allow it.

        ``False`` (and ``fn`` not called) if the caller must queue instead. On the main thread
        the whole decision runs shielded, so a Ctrl-C surfaces from ``SHIELD.leave()`` at the
        end, never from inside our bookkeeping.
        """
        if not on_main_thread():
            return self._run_locked(fn, *args, **kwargs)
        SHIELD.enter()
        try:
            return main_thread_may_send() and self._run_locked(fn, *args, **kwargs)
        finally:
            SHIELD.leave()  # raises a KeyboardInterrupt that arrived meanwhile

    def _run_locked(self, fn: Any, *args: Any, **kwargs: Any) -> bool:
        if not self.io_running or not self._is_master_process():
            return False  # ipykernel's no-thread path applies
        with self.socket_lock:
            if self._events and not self.on_io_thread():
                return False  # older messages are queued: ours goes behind them
            fn(*args, **kwargs)
        return True

    def send_multipart(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.run_here(self._really_send, msg, *args, **kwargs):
            super().send_multipart(msg, *args, **kwargs)

    def _really_send(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        with self.socket_lock:
            socket = self.socket
            if (
                args
                or kwargs.keys() - {"copy"}
                or self.closed
                or self.forked
                or socket is None
                or socket.closed
            ):
                super()._really_send(msg, *args, **kwargs)  # ipykernel's cases and messages
            else:
                try:
                    send_frames(socket, msg, 0, kwargs.get("copy", True))
                except zmq.ZMQError as e:
                    if e.errno != zmq.ENOTSOCK:
                        raise
                    return  # closed by shutdown on another thread, as ipykernel tolerates
            self._wake_for_subscriptions()

    def _handle_event(self, msg: Any) -> None:
        # As ipykernel: run the events queued when we woke, in order; newer ones wait for the
        # next wake-up. Each runs under the lock, so senders see the queue and socket agree.
        for _ in range(len(self._events)):
            with self.socket_lock:
                event = self._events.popleft()
                event()

    # --- XPUB subscriptions ---------------------------------------------------------------

    def _setup_xpub_listener(self) -> None:
        # Replaces ipykernel's ZMQStream on the socket, which would recv without our lock.
        if not hasattr(self.socket, "getsockopt"):
            return
        if self.socket.getsockopt(zmq.TYPE) != zmq.XPUB:
            return
        self._xpub = True
        self.io_loop.add_handler(self.socket, self._on_readable, self.io_loop.READ)

    def _on_readable(self, fd: Any = None, events: int = 0) -> None:
        with self.socket_lock:
            self._read_subscriptions()

    def _read_subscriptions(self) -> None:
        # Reading EVENTS re-arms the edge-triggered FD; drain until it reports nothing.
        while self.socket is not None and not self.socket.closed:
            try:
                if not self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    return
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle_subscription(frames)

    def _wake_for_subscriptions(self) -> None:
        sock = self.socket
        if not self._xpub or sock is None or sock.closed or self.forked:
            return
        try:
            waiting = ready_events(sock) & POLLIN
        except zmq.ZMQError:
            return
        if not waiting:
            return
        if self.on_io_thread():
            self._read_subscriptions()
        elif self.io_running:
            self.io_loop.add_callback(self._on_readable)


class DirectOutStream(OutStream):
    """``sys.stdout``/``sys.stderr`` whose ``flush()`` sends on the calling thread."""

    def _direct_thread(self) -> DirectIOPubThread | None:
        pub = self.pub_thread
        return pub if isinstance(pub, DirectIOPubThread) else None

    def _schedule_flush(self) -> None:
        pub = self._direct_thread()
        if pub is None or not pub.io_running:
            super()._schedule_flush()
            return
        if self._flush_pending:
            return
        self._flush_pending = True
        # add_callback is thread-safe and leaves the event queue empty for direct sends.
        self._io_loop.add_callback(self._io_loop.call_later, self.flush_interval, self._flush)

    def flush(self) -> None:
        pub = self._direct_thread()
        if pub is None:
            super().flush()
        elif pub.run_here(self._flush):
            pass
        elif not pub.io_running or pub.on_io_thread() or not self._is_master_process():
            self._flush()  # nobody to hand over to; sends take ipykernel's no-thread path
        else:
            # Messages are queued ahead of ours: flush behind them on the IOPub thread and
            # wait until it has (ipykernel's handshake, without its Thread.is_alive() calls).
            done = threading.Event()
            pub.schedule(self._flush)
            pub.schedule(done.set)
            if not done.wait(self.flush_timeout):
                print("IOStream.flush timed out", file=sys.__stderr__)

    def _flush(self) -> None:
        # The timer (IOPub thread) and flush() (any thread) may race: rotating the buffers and
        # sending them must be one step, or two flushes could send their parts out of order.
        pub = self._direct_thread()
        with pub.socket_lock if pub is not None else nullcontext():
            super()._flush()
