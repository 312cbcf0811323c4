"""Why a server stopped, in words a person can act on.

Spawners that can tell more than an exit status (a container's OOM kill, a command missing from
the image, a systemd unit's result) offer ``async exit_error() -> SpawnError | None``; it is an
optional part of the spawner contract, so the lifecycle asks for it through :func:`explain_exit`
and falls back to the bare status. ``exit_error`` returns None while the server still runs.
"""

from __future__ import annotations

import logging
from typing import Any

from amalthea.spawners.base import SpawnError

__all__ = ["explain_exit"]

log = logging.getLogger("amalthea.lifecycle")


async def explain_exit(spawner: Any, fallback: SpawnError) -> SpawnError:
    """The spawner's own account of the exit (with its log tail), else ``fallback``."""
    explain = getattr(spawner, "exit_error", None)
    if not callable(explain):
        return fallback
    try:
        error = await explain()
    except Exception:  # the explanation is a courtesy: never let it hide the failure
        log.exception("exit_error() of %s failed", type(spawner).__name__)
        return fallback
    return error if isinstance(error, SpawnError) else fallback
