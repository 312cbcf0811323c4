"""The lean activity watcher (amalthea/singleuser/kernelwatch.py) tracks like jupyter_server's.

Each scenario runs on a real jupyter_server MappingKernelManager with a real kernel, once with
jupyter_server's own watcher and once with ours, and expects the same execution states and
last-activity moves. Checks that only make sense for ours (forged or replayed messages, the
socket closed on shutdown) feed real signed frames to the real watcher.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from jupyter_client.session import Session
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from amalthea.singleuser.kernelwatch import IOPubWatcher, enable_lean_activity

pytestmark = pytest.mark.slow


async def until(predicate: Any, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


class Kernel:
    """A kernel of a MappingKernelManager and a client talking to it."""

    def __init__(self, manager: AsyncMappingKernelManager, kernel_id: str) -> None:
        self.manager, self.id = manager, kernel_id
        self.km = manager.get_kernel(kernel_id)
        self.client = self.km.client()

    @property
    def state(self) -> str:
        return str(self.km.execution_state)

    @property
    def last_activity(self) -> datetime:
        activity: datetime = self.km.last_activity
        return activity

    async def reply(self, msg_id: str) -> None:
        while (await self.client.get_shell_msg(timeout=20))["parent_header"]["msg_id"] != msg_id:
            pass

    async def settle(self) -> None:
        """Wait until the kernel's IOPub has gone quiet (its idle status arrived).

        A watcher subscribes after the kernel is up, so it can miss the statuses answering
        wait_for_ready (ZMQ's slow joiner) and stay "starting"; like jupyter_server's
        websocket nudge, ask for kernel info until a status gets through.
        """
        for _ in range(100):
            if self.state != "starting":
                break
            await self.reply(self.client.kernel_info())
            await asyncio.sleep(0.05)
        await until(lambda: self.state == "idle")
        await asyncio.sleep(0.2)


@pytest.fixture(params=["lean", "jupyter_server"])
async def kernel(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Kernel]:
    manager = AsyncMappingKernelManager(root_dir=str(tmp_path))
    if request.param == "lean":
        assert enable_lean_activity(manager)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    kernel_id = await manager.start_kernel(kernel_name="python3", env=env)
    kernel = Kernel(manager, kernel_id)
    assert isinstance(kernel.km._activity_stream, IOPubWatcher) == (request.param == "lean")
    kernel.client.start_channels()
    try:
        await kernel.client.wait_for_ready(timeout=60)
        yield kernel
    finally:
        kernel.client.stop_channels()
        if kernel_id in manager:
            await manager.shutdown_kernel(kernel_id, now=True)


async def test_execution_is_busy_then_idle_and_activity(kernel: Kernel) -> None:
    await kernel.settle()
    before = kernel.last_activity
    msg_id = kernel.client.execute("import time; time.sleep(1)")
    await until(lambda: kernel.state == "busy")
    assert kernel.last_activity > before
    busy_at = kernel.last_activity
    await kernel.reply(msg_id)
    await until(lambda: kernel.state == "idle")
    assert kernel.last_activity > busy_at  # the result and idle status came later
    assert kernel.manager.last_kernel_activity == kernel.last_activity
    assert kernel.manager.kernel_model(kernel.id)["execution_state"] == "idle"


async def test_every_execution_ends_idle(kernel: Kernel) -> None:
    # Quick cells, some printing in bursts: a wakeup the watcher missed would leave a
    # kernel "busy" after its last message.
    await kernel.settle()
    for i in range(25):
        msg_id = kernel.client.execute(f"for j in range({i % 5}): print(j)\n{i}")
        await kernel.reply(msg_id)
        await until(lambda: kernel.state == "idle", timeout=5)


async def test_untracked_requests_are_not_activity(kernel: Kernel) -> None:
    await kernel.settle()
    before = kernel.last_activity
    await kernel.reply(kernel.client.comm_info())
    await kernel.reply(kernel.client.kernel_info())
    await asyncio.sleep(0.3)
    assert kernel.last_activity == before
    assert kernel.state == "idle"


async def test_restart_keeps_tracking(kernel: Kernel) -> None:
    await kernel.manager.restart_kernel(kernel.id)
    await kernel.client.wait_for_ready(timeout=60)
    await kernel.settle()
    msg_id = kernel.client.execute("import time; time.sleep(0.5)")
    await until(lambda: kernel.state == "busy")
    await kernel.reply(msg_id)
    await until(lambda: kernel.state == "idle")


def signed(key: bytes, msg_type: str, content: dict[str, Any], parent: str) -> list[bytes]:
    sender = Session(key=key)
    request = sender.msg(parent, {})
    wire = sender.serialize(sender.msg(msg_type, content, parent=request))
    return [
        b"kernel.x." + msg_type.encode(),
        *(f if isinstance(f, bytes) else f.bytes for f in wire),
    ]


async def test_forged_and_replayed_messages_are_ignored(kernel: Kernel) -> None:
    watcher = kernel.km._activity_stream
    if not isinstance(watcher, IOPubWatcher):
        pytest.skip("jupyter_server's watcher has its own checks")
    await kernel.settle()
    before = kernel.last_activity
    busy = {"execution_state": "busy"}
    watcher.record(signed(b"not the kernel's key", "status", busy, "execute_request"))
    assert (kernel.state, kernel.last_activity) == ("idle", before)

    genuine = signed(kernel.km.session.key, "status", busy, "execute_request")
    watcher.record(genuine)
    assert kernel.state == "busy" and kernel.last_activity > before
    idle = signed(kernel.km.session.key, "status", {"execution_state": "idle"}, "execute_request")
    watcher.record(idle)
    watcher.record(genuine)  # replayed
    assert kernel.state == "idle"


async def test_shutdown_closes_the_watchers_socket(kernel: Kernel) -> None:
    watcher = kernel.km._activity_stream
    await kernel.manager.shutdown_kernel(kernel.id, now=True)
    if isinstance(watcher, IOPubWatcher):
        assert watcher.socket.closed
        assert not asyncio.get_running_loop().remove_reader(watcher.fd)  # already removed
    else:
        assert watcher.closed()
