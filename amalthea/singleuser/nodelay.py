"""Turn off Nagle's algorithm on kernel websockets (TCP_NODELAY), after the handshake.

Why: one ``1+1`` makes the kernel send five small messages (``status: busy``,
``execute_input``, ``execute_result``, ``execute_reply``, ``status: idle``), and jupyter_server
writes each as its own websocket frame as soon as it arrives from ZMQ. With Nagle on (tornado's
default) only the first small write leaves at once; the next waits until the client ACKs the
first, and the client's kernel delays that ACK by up to 40 ms (delayed ACK). That stall was
about 40 of the about 50 ms of every round trip (jupyterhub-baseline.md, item 6).

Where and when: on the websocket's own stream, once the handshake is done. Earlier does not
stick: tornado's HTTP/1 connection calls ``set_nodelay(True)`` while it finishes a response and
``set_nodelay(False)`` right after, and the ``101 Switching Protocols`` is such a response, so
nodelay set in ``prepare``/``get`` (on ``request.connection.stream``) is switched off again
before the first kernel message. ``KernelWebsocketHandler.open`` runs after tornado has detached
the stream and then calls ``connection.connect()``; that call is where we hook in.

How: wrap whatever ``kernel_websocket_connection_class`` is configured (the ZMQ one, the gateway
one, a user's) in a subclass whose ``connect`` sets nodelay first. Rejected: replacing the class
outright (drops a configured one), subclassing ``KernelWebsocketHandler`` (jupyter_server owns
its route table), patching tornado for every websocket (not ours to change). Unix-socket
servers are unaffected: tornado's ``set_nodelay`` only acts on TCP sockets.
"""

from __future__ import annotations

from typing import Any

from .mixins import with_mixin

__all__ = ["enable_kernel_nodelay", "with_nodelay"]

SETTING = "kernel_websocket_connection_class"


class NoDelayMixin:
    """Sets TCP_NODELAY on the kernel websocket before connecting it to the kernel."""

    websocket_handler: Any

    def connect(self) -> Any:
        handler = self.websocket_handler
        # ws_connection exists once tornado accepted the upgrade; open() runs only after that.
        if handler is not None and handler.ws_connection is not None:
            handler.set_nodelay(True)
        # connect() is sync in the ZMQ class (returns a Future) and async in others; the
        # handler awaits whatever comes back, so pass it through untouched.
        return super().connect()  # type: ignore[misc]


def with_nodelay(cls: type) -> type:
    """``cls`` with :class:`NoDelayMixin` in front (``cls`` itself if it already has it)."""
    return with_mixin(NoDelayMixin, cls, "NoDelay", __name__)


def enable_kernel_nodelay(settings: dict[str, Any]) -> bool:
    """Wrap the web app's kernel websocket connection class; ``False`` if none is set."""
    cls = settings.get(SETTING)
    if cls is None:
        return False
    settings[SETTING] = with_nodelay(cls)
    return True
