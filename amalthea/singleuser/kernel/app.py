"""The fast kernel: ipykernel's IPython kernel with IOPub sent from the producing thread.

:class:`FastKernelApp` is ``IPKernelApp`` with three changes, each removing a thread hand-off
or a fixed wait from every execution (figures for ``1+1`` in benchmarks/kernel_rtt.py):

- the IOPub thread is :class:`~.iopub.DirectIOPubThread` and ``sys.stdout``/``sys.stderr``
  are :class:`~.iopub.DirectOutStream` (see iopub.py);
- the kernel is :class:`FastIPythonKernel`: while handling a request its SIGINT handler is
  :data:`~.sigint.SHIELD`'s, which can defer Ctrl-C by the few microseconds of a send, and it
  does not sleep 0.5 ms before every ``execute_reply`` (ipykernel's ``_execute_sleep``, a guard
  against stream output arriving after the reply, which it cannot anyway when streams are
  flushed synchronously before the reply is sent);
- without subshells (``FastKernelApp.subshells = False``, the default) the shell socket is
  read on the main thread, as ipykernel 6 did, instead of by ipykernel 7's shell-channel thread,
  which forwards each request to the main thread and each reply back over inproc sockets.

And it trims per-request overhead that changes nothing: debug records built only to be dropped
(:func:`trim_logger_level`), a signature inspected per execution
(:func:`cache_accepts_parameters`), and the shell's shortcuts in shell.py.

Everything else — options, config files (``ipython_kernel_config.py``), magics, comms, the
debugger — is ipykernel's. If this ipykernel lacks an internal we rely on, the app logs why and
runs as the stock kernel.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import zmq
from ipykernel import iostream, ipkernel, kernelapp
from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp
from traitlets import Bool, Float, Type, default

try:  # ipykernel 7: how the shell stream's callback runs requests (see _abort_queues)
    from ipykernel.utils import _async_in_context
except ImportError:  # pragma: no cover - ipykernel 6
    _async_in_context = None  # type: ignore[assignment]

from ..zmqfast import lean_stream
from .iopub import DirectIOPubThread, supported
from .shell import FastZMQInteractiveShell
from .sigint import SHIELD

__all__ = [
    "FastIPythonKernel",
    "FastKernelApp",
    "NoShellChannelThread",
    "cache_accepts_parameters",
    "trim_logger_level",
]

OUTSTREAM = "amalthea.singleuser.kernel.iopub.DirectOutStream"


def trim_logger_level(log: Any) -> None:
    """Raise ``log``'s level to the lowest level its handlers let through.

    traitlets leaves an application's logger at DEBUG and filters in the handler (WARNING for
    a kernel), so each of the ~5 ``log.debug`` calls ipykernel makes per request still builds
    a LogRecord (caller lookup included) only for the handler to drop it: about 4 % of the
    kernel's CPU for ``1+1``. With the logger at the handlers' floor, ``isEnabledFor`` stops
    them first. Nothing that would have been written is lost.
    """
    if not isinstance(log, logging.Logger) or log.propagate or not log.handlers:
        return  # records may reach other loggers' handlers: leave the level alone
    floor = min(handler.level for handler in log.handlers)
    if floor > log.level:
        log.setLevel(floor)


def cache_accepts_parameters() -> None:
    """Remember ipykernel's per-request check of ``run_cell``'s signature.

    ipykernel's ``do_execute`` calls ``inspect.signature`` on the shell's ``run_cell`` for every
    execution (to know whether it takes ``cell_id``); about 3 % of the kernel's CPU for
    ``1+1``. A function's parameters do not change, so the answer is kept per function.
    """
    original: Callable[[Any, list[str]], dict[str, bool]] | None = getattr(
        ipkernel, "_accepts_parameters", None
    )
    if original is None or getattr(original, "cached", False):
        return
    answers: dict[tuple[Any, tuple[str, ...]], dict[str, bool]] = {}

    def accepts_parameters(meth: Any, param_names: list[str]) -> dict[str, bool]:
        key = (getattr(meth, "__func__", meth), tuple(param_names))
        try:
            return dict(answers[key])
        except KeyError:
            answer = answers[key] = original(meth, param_names)
            return dict(answer)
        except TypeError:  # an unhashable callable
            return original(meth, param_names)

    accepts_parameters.cached = True  # type: ignore[attr-defined]
    ipkernel._accepts_parameters = accepts_parameters  # type: ignore[attr-defined]


class NoShellChannelThread:
    """Stands in for ipykernel 7's shell-channel thread when subshells are off.

    ipykernel 7 mostly supports running without that thread — it tests ``if
    self.shell_channel_thread:`` and ``_supports_kernel_subshells`` — but 7.4's ``do_execute``
    reads ``shell_channel_thread.parent_thread`` unguarded for cells with top-level ``await``.
    This object is falsy, so the guarded paths take the no-subshell branch, and names the main
    thread as the parent, which is where requests then run.
    """

    def __init__(self) -> None:
        self.parent_thread = threading.main_thread()

    def __bool__(self) -> bool:
        return False


class FastIPythonKernel(IPythonKernel):
    """IPythonKernel whose request handlers run under the deferring SIGINT handler."""

    shell_class = Type(FastZMQInteractiveShell)

    _execute_sleep = Float(
        0.0,
        help="Seconds to sleep after flushing output, before each execute_reply "
        "(ipykernel's default is 0.0005; not needed when output is flushed synchronously).",
    ).tag(config=True)

    @property
    def _supports_kernel_subshells(self) -> bool:
        return bool(self.shell_channel_thread)

    _abort_tasks: set[asyncio.Task[None]]

    def _abort_queues(self, subshell_id: str | None = None) -> None:
        """After an error, abort the requests sent before it; not those sent after its reply.

        Without the shell-channel thread, ipykernel 7 falls back to ipykernel 6's way: read
        what is waiting, send the reply, and clear the flag in a callback. Requests wait for
        the shell's asyncio lock as tasks, and the callback ran ahead of them, while a client
        that answered the error reply at once could land in the read and be aborted (one in
        four in tests/singleuser/test_fast_kernel.py). Here the requests already sent are read
        before the reply leaves (it goes with the idle status), and the flag is cleared by a
        task that queues for the same lock behind them: what stock ipykernel 7 does with its
        "stop aborting" marker.
        """
        lock = getattr(self, "_main_asyncio_lock", None)
        if (
            _async_in_context is None
            or subshell_id is not None
            or self.shell_channel_thread
            or self.stop_on_error_timeout
            or self.shell_stream is None
            or lock is None
        ):
            super()._abort_queues(subshell_id)
            return
        self._aborting = True
        self.log.info("Aborting queue")
        self.shell_stream.flush(zmq.POLLIN)
        if not hasattr(self, "_abort_tasks"):
            self._abort_tasks = set()
        # The same path as a request read by the flush: ZMQStream wraps ipykernel's callback,
        # _async_in_context, in a task, which starts the handler as a second task. Going the
        # same way puts us in the lock's queue right behind the last of them, and ahead of
        # anything read later, without counting event-loop steps.
        task = asyncio.ensure_future(_async_in_context(self._finish_abort)(lock))
        self._abort_tasks.add(task)
        task.add_done_callback(self._abort_tasks.discard)

    async def _finish_abort(self, lock: asyncio.Lock) -> None:
        async with lock:
            self._aborting = False
            self.log.info("Finishing abort")

    def pre_handler_hook(self) -> None:
        # ipykernel installs signal.default_int_handler here; ours raises the same
        # KeyboardInterrupt, only not in the middle of sending a message.
        self.saved_sigint_handler = signal.signal(signal.SIGINT, SHIELD.handler)


class FastKernelApp(IPKernelApp):
    """IPKernelApp that runs :class:`FastIPythonKernel` with direct IOPub sends."""

    subshells = Bool(
        False,
        help="Keep ipykernel 7's kernel subshells (a shell-channel thread that routes requests "
        "to subshell threads). Off, requests are read on the main thread as in ipykernel 6, "
        "which saves two thread hand-offs per request; turn on for clients that create "
        "subshells. No effect with ipykernel 6.",
    ).tag(config=True)

    fast = Bool(
        True,
        help="Use direct IOPub sends. Off, this is the stock ipykernel (for comparisons).",
    ).tag(config=True)

    def _configure_logging(self) -> None:
        super()._configure_logging()
        trim_logger_level(self.log)

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if self.fast:
            cache_accepts_parameters()

    @default("kernel_class")
    def _default_kernel_class(self) -> type[IPythonKernel]:
        return FastIPythonKernel

    @default("outstream_class")
    def _default_outstream_class(self) -> str:
        return OUTSTREAM

    def init_iopub(self, context: Any) -> None:
        missing = supported()
        if not self.fast or missing:
            if missing:
                self.log.warning("Fast kernel off: this ipykernel has no %s", missing)
            self.outstream_class = "ipykernel.iostream.OutStream"
            super().init_iopub(context)
            return
        # ipykernel builds the thread from the name IOPubThread in its kernelapp module and has
        # no setting for it; point the name at ours for the duration of the call.
        name = iostream.IOPubThread.__name__
        setattr(kernelapp, name, DirectIOPubThread)
        try:
            super().init_iopub(context)
        finally:
            setattr(kernelapp, name, iostream.IOPubThread)

    def init_kernel(self) -> None:
        super().init_kernel()
        if self.fast and not self.subshells:
            # Read on the main loop (see init_control): a LeanStream reads every waiting
            # request in one callback. Replies stay queued until ipykernel flushes the stream:
            # an error's reply must not leave before _abort_queues has read the requests
            # sent ahead of it.
            lean_stream(self.kernel.shell_stream, send_at_once=False)

    def init_control(self, context: Any) -> None:
        super().init_control(context)
        thread = getattr(self, "shell_channel_thread", None)  # None before ipykernel 7
        if not self.subshells and thread is not None:
            thread.io_loop.close()  # never started
            self.shell_channel_thread = NoShellChannelThread()


def main() -> None:
    FastKernelApp.launch_instance()
