"""Tell the hub when this server was last used, so idle culling sees real use.

jupyter_server already tracks API requests, kernel messages and terminal output
(``ServerWebApplication.last_activity``). That is not enough: a cell that runs for six hours
without printing sends no messages, and would look idle. So "now" is reported while any
kernel is busy and while any terminal has a browser attached.

Every ``JUPYTERHUB_ACTIVITY_INTERVAL`` seconds (±10 % jitter, so a hub restarted with many
servers is not hit in lockstep) the reporter POSTs the newest timestamp to
``JUPYTERHUB_ACTIVITY_URL``, but only when it moved since the last successful report.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .hubclient import HubClient, HubError

__all__ = ["ActivityReporter", "isoformat", "server_last_activity"]

log = logging.getLogger(__name__)


def isoformat(ts: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, the hub's timestamp format."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _something_running(settings: Mapping[str, Any]) -> bool:
    kernels = settings.get("kernel_manager")
    if kernels is not None:
        for kernel_id in list(kernels.list_kernel_ids()):
            try:
                kernel = kernels.get_kernel(kernel_id)
            except KeyError:  # shut down while we iterate
                continue
            if getattr(kernel, "execution_state", None) == "busy":
                return True
    terminals = settings.get("terminal_manager")
    if terminals is not None:
        for term in list(getattr(terminals, "terminals", {}).values()):
            if getattr(term, "clients", None):
                return True
    return False


def server_last_activity(settings: Mapping[str, Any], recorded: Callable[[], datetime]) -> datetime:
    """Now if a computation or attached terminal is live, else the recorded activity."""
    if _something_running(settings):
        return datetime.now(UTC)
    return recorded()


class ActivityReporter:
    """Periodically POST the last activity to the hub; one owner task runs :meth:`run`."""

    def __init__(
        self,
        client: HubClient,
        *,
        activity_url: str,
        server_name: str,
        interval: float,
        last_activity: Callable[[], datetime],
        retry_budget: float = 60.0,
    ) -> None:
        self.client = client
        self.activity_url = activity_url
        self.server_name = server_name
        self.interval = interval
        self.last_activity = last_activity
        self.retry_budget = retry_budget
        self.last_reported: datetime | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.1))
            try:
                await self.report_once()
            except HubError as exc:
                log.error("Could not report activity to the hub: %s", exc)

    def payload(self, ts: datetime) -> dict[str, Any]:
        stamp = isoformat(ts)
        return {"last_activity": stamp, "servers": {self.server_name: {"last_activity": stamp}}}

    async def report_once(self) -> bool:
        """Report if there was activity since the last report; True if a report was sent."""
        ts = self.last_activity()
        if self.last_reported is not None and ts <= self.last_reported:
            return False
        await self._post_with_retries(self.payload(ts))
        self.last_reported = ts
        return True

    async def _post_with_retries(self, payload: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget
        delay = 1.0
        while True:
            try:
                await self.client.post_json(self.activity_url, payload)
                return
            except HubError as exc:
                if loop.time() + delay > deadline:
                    raise
                log.warning("Activity report failed (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
