"""Keep signal handlers from raising in the middle of a multipart ZMQ send.

A Jupyter message is several ZMQ frames, sent one call each. Python runs signal handlers in
the main thread between bytecodes, so a handler that raises (Ctrl-C's ``KeyboardInterrupt``,
a ``SIGALRM`` timeout) can stop a send after some frames: the socket then holds half a message,
and the next send's frames are appended to it, corrupting both. Stock ipykernel avoids this by
sending IOPub from its own thread, where handlers never run; we send from the main thread too
(see iopub.py), so the main thread may do so only when no handler can raise mid-send:

- every signal's handler is ``SIG_DFL``, ``SIG_IGN`` or :data:`SHIELD`'s, checked per send
  (about 4 µs for all signals through ``_signal``; ``signal.getsignal`` wraps each result in
  an enum and costs 25 times more);
- :data:`SHIELD`'s handler is what the fast kernel installs for SIGINT while it handles a
  request, instead of ``signal.default_int_handler``. It raises ``KeyboardInterrupt`` like that
  one, except during a send, when it remembers the signal and the send raises once it is done.

If user code installs any other Python handler, the main thread queues to the IOPub thread as
stock ipykernel does; correct, just not faster.
"""

from __future__ import annotations

import _signal  # the C module: getsignal without signal.py's enum conversion
import signal
import threading
from types import FrameType

__all__ = ["SHIELD", "InterruptShield", "main_thread_may_send"]

_SAFE_HANDLERS = (signal.SIG_DFL, signal.SIG_IGN, None)
_CATCHABLE = tuple(
    int(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
)


class InterruptShield:
    """A SIGINT handler that defers its ``KeyboardInterrupt`` while a send is in progress.

    Main thread only, like every Python signal handler: no lock needed.
    """

    def __init__(self) -> None:
        self._depth = 0
        self._pending = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self._depth:
            self._pending = True
            return
        signal.default_int_handler(signum, frame)

    def enter(self) -> None:
        self._depth += 1

    def leave(self) -> None:
        """End a send; raise the ``KeyboardInterrupt`` that arrived during it, if any."""
        self._depth -= 1
        if not self._depth and self._pending:
            self._pending = False
            raise KeyboardInterrupt


SHIELD = InterruptShield()


def main_thread_may_send() -> bool:
    """No installed signal handler could raise in the middle of a send."""
    shielded = SHIELD.handler
    for signum in _CATCHABLE:
        handler = _signal.getsignal(signum)
        if handler not in _SAFE_HANDLERS and handler != shielded:
            return False
    return True


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
