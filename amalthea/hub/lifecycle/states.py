"""Server lifecycle states and the transitions between them.

    stopped ──spawn──▶ pending ──ready──▶ running ──stop──▶ stopping ──▶ stopped
       ▲                  │  └──stop (cancel)──▶ stopping      │
       │                  └──error/timeout──▶ failed ──spawn──▶ pending
       └────────────── running ──process exited (poll)────────┘

"failed" behaves like "stopped" (nothing runs) but remembers why, so the progress page and API
can show the reason and the log tail until the next explicit spawn. Every state change goes
through :func:`check` so an impossible transition is a bug caught where it happens.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["IllegalTransition", "ServerState", "check"]


class ServerState(StrEnum):
    STOPPED = "stopped"
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """Something may be running (JupyterHub's "active" = pending or ready)."""
        return self in (ServerState.PENDING, ServerState.RUNNING, ServerState.STOPPING)

    @property
    def pending_label(self) -> str | None:
        """JupyterHub's ``pending`` field: "spawn", "stop" or None."""
        return {ServerState.PENDING: "spawn", ServerState.STOPPING: "stop"}.get(self)


_ALLOWED: dict[ServerState, frozenset[ServerState]] = {
    ServerState.STOPPED: frozenset({ServerState.PENDING}),
    ServerState.FAILED: frozenset({ServerState.PENDING, ServerState.STOPPED}),
    ServerState.PENDING: frozenset({ServerState.RUNNING, ServerState.FAILED, ServerState.STOPPING}),
    ServerState.RUNNING: frozenset({ServerState.STOPPING, ServerState.STOPPED}),
    ServerState.STOPPING: frozenset({ServerState.STOPPED, ServerState.FAILED}),
}


class IllegalTransition(RuntimeError):
    pass


def check(old: ServerState, new: ServerState) -> ServerState:
    if new not in _ALLOWED[old]:
        raise IllegalTransition(f"server cannot go from {old} to {new}")
    return new
