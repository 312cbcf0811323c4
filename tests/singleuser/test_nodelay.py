"""Kernel websockets have TCP_NODELAY set, read back from the real server's socket.

Not a timing test: Nagle + delayed ACK cost ~40 ms per round trip (amalthea/singleuser/
nodelay.py), but timings on a shared machine are too noisy to assert on. Instead we take a
duplicate of the server process's end of our websocket (pidfd_getfd, allowed on our own
child process) and ask the kernel for the option. A server with the fix turned off is the
control: it proves the check can fail, i.e. nothing else sets the option for us.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, singleuser_env, start_singleuser
from fakehub import ALICE, ALICE_AUTH, FakeHub
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from traitlets.config import Config
from websockets.sync.client import connect

from amalthea.singleuser.nodelay import NoDelayMixin, enable_kernel_nodelay, with_nodelay

pytestmark = pytest.mark.slow

AUTH = ALICE_AUTH
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture


def peer_socket(pid: int, server_port: int, client_port: int) -> socket.socket:
    """A duplicate of ``pid``'s TCP socket from ``server_port`` to our ``client_port``."""
    inode = ""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                inode = fields[9]
    assert inode, f"no TCP connection {server_port} -> {client_port} in /proc/net/tcp"
    target = f"socket:[{inode}]"
    fd = next(
        int(name)
        for name in os.listdir(f"/proc/{pid}/fd")
        if os.readlink(f"/proc/{pid}/fd/{name}") == target
    )
    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        dup = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            err = ctypes.get_errno()
            pytest.skip(f"pidfd_getfd refused ({os.strerror(err)}); cannot inspect the socket")
    finally:
        os.close(pidfd)
    return socket.socket(fileno=dup)


def kernel_nodelay(server: RunningServer) -> int:
    """Open a kernel websocket on ``server``, run code, return the server side's TCP_NODELAY."""
    r = httpx.post(server.url + "api/kernels", headers=AUTH, json={}, timeout=60)
    r.raise_for_status()
    kernel = r.json()["id"]
    url = (
        f"ws://127.0.0.1:{server.port}{server.prefix}api/kernels/{kernel}/channels"
        f"?session_id={uuid.uuid4().hex}"
    )
    try:
        with connect(url, additional_headers=AUTH, open_timeout=60) as ws:
            # connect() returns after the 101; the server sets the option in open(), which
            # runs after that. A kernel_info round trip means open() has finished.
            ws.send(_kernel_info_request())
            while '"kernel_info_reply"' not in str(ws.recv(timeout=60)):
                pass
            client_port = ws.socket.getsockname()[1]
            with peer_socket(server.proc.pid, server.port, client_port) as sock:
                return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        httpx.delete(server.url + f"api/kernels/{kernel}", headers=AUTH, timeout=30)


def _kernel_info_request() -> str:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": "kernel_info_request",
        "username": "t",
        "session": uuid.uuid4().hex,
        "version": "5.3",
        "date": "",
    }
    return json.dumps(
        {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": {},
            "channel": "shell",
            "buffers": [],
        }
    )


@pytest.fixture(scope="module")
def nagle_server(
    fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("alice-nagle")
    server = start_singleuser(
        fake_hub,
        singleuser_env(fake_hub, home),
        home,
        extra_args=["--HubExtension.kernel_tcp_nodelay=False"],
    )
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _alice_token(fake_hub: FakeHub) -> None:
    fake_hub.state.tokens["alice-token"] = ALICE


def test_kernel_websocket_has_tcp_nodelay(alice_server: RunningServer) -> None:
    assert kernel_nodelay(alice_server) == 1


def test_control_without_the_fix_nagle_stays_on(nagle_server: RunningServer) -> None:
    assert kernel_nodelay(nagle_server) == 0


def test_with_nodelay_wraps_once_and_keeps_base_config() -> None:
    cls = with_nodelay(ZMQChannelsWebsocketConnection)
    assert issubclass(cls, NoDelayMixin) and issubclass(cls, ZMQChannelsWebsocketConnection)
    assert with_nodelay(cls) is cls
    config = Config({"ZMQChannelsWebsocketConnection": {"limit_rate": False}})
    conn: Any = cls(config=config)
    assert conn.limit_rate is False  # c.ZMQChannelsWebsocketConnection still applies


def test_enable_kernel_nodelay_without_a_class_changes_nothing() -> None:
    settings: dict[str, Any] = {}
    assert enable_kernel_nodelay(settings) is False
    assert settings == {}
