"""Run a blocking identity-system client (PAM, ldap3, GSSAPI) off the event loop, with a deadline.

Each authenticator gets its own small thread pool rather than asyncio's default executor:
a hung LDAP server or KDC then ties up at most ``max_workers`` threads of that one
authenticator, never the threads the rest of the hub uses. ``asyncio.wait_for`` bounds how
long a login waits; the thread itself finishes when the client library's own socket timeout
fires (which is why every caller also configures one).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner:
    def __init__(self, name: str, max_workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)

    async def run(self, timeout: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn`` in the pool; raise ``TimeoutError`` after ``timeout`` seconds
        (including time spent queued behind other stuck calls)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        return await asyncio.wait_for(future, timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
