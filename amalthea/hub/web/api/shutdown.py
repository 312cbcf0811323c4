"""``POST /shutdown``: stop the hub, optionally the proxy and all servers (protocol §5.2)."""

from __future__ import annotations

import asyncio
from typing import Any

from amalthea.hub.web.api._support import RestHandler, bad


class ShutdownHandler(RestHandler):
    async def post(self) -> None:
        await self.need_any(["shutdown"])
        body = self.body_object({"proxy", "servers"})
        for key in ("proxy", "servers"):
            if key in body and not isinstance(body[key], bool):
                raise bad(f"{key} must be true or false")
        shutdown = self.hub.shutdown
        if shutdown is None:
            raise bad("This hub cannot be shut down over the API", 501)
        self.write_json({"message": "Shutting down Hub"}, 202)
        # answer first, then stop: the caller should see the 202
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, lambda: loop.create_task(
            _call(shutdown)))  # fmt: skip


handlers = [(r"/shutdown", ShutdownHandler)]


async def _call(shutdown: Any) -> None:
    result = shutdown()
    if asyncio.iscoroutine(result):
        await result
