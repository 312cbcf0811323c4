"""Fast kernels talk to the server over Unix sockets (amalthea/singleuser/kerneltransport.py)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets.config import Config

from amalthea.singleuser.kernelspec import enable_fast_kernel
from amalthea.singleuser.kerneltransport import (
    SUN_PATH_MAX,
    enable_kernel_ipc,
    ipc_prefix,
    private_dir,
    short_socket_dir,
    use_ipc,
)
from amalthea.singleuser.kernelwatch import enable_lean_activity


def fast_specs() -> KernelSpecManager:
    specs = KernelSpecManager()
    assert enable_fast_kernel(specs)
    return specs


def manager(tmp_path: Path, specs: KernelSpecManager, **kw: object) -> KernelManager:
    return KernelManager(
        kernel_name="python3",
        kernel_spec_manager=specs,
        connection_file=str(tmp_path / "kernel-abc.json"),
        **kw,
    )


def test_socket_paths_must_fit_a_unix_socket_address() -> None:
    assert ipc_prefix("/home/u/.local/share/jupyter/runtime/kernel-1.json") == (
        "/home/u/.local/share/jupyter/runtime/kernel-1-ipc"
    )
    deep = "/" + "d" * (SUN_PATH_MAX - len("/kernel-1-ipc-9")) + "/kernel-1.json"
    assert ipc_prefix(deep) is None
    # too deep for the runtime directory: the short private directory takes the sockets
    assert ipc_prefix(deep, "/tmp/amalthea-0") == "/tmp/amalthea-0/kernel-1-ipc"
    assert ipc_prefix(deep, "/" + "s" * SUN_PATH_MAX) is None


def test_short_socket_dir_must_be_private_and_ours(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    assert private_dir(str(fresh))  # created, 0700
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    assert not private_dir(str(open_dir))  # group/others could reach the sockets
    assert stat.S_IMODE(open_dir.stat().st_mode) == 0o755  # refused, not repaired
    link = tmp_path / "link"
    link.symlink_to(fresh)
    assert not private_dir(str(link))  # a planted symlink is never followed
    afile = tmp_path / "file"
    afile.write_text("")
    assert not private_dir(str(afile))
    found = short_socket_dir()
    assert found is not None and private_dir(found)


def test_only_unconfigured_fast_kernels_switch(tmp_path: Path) -> None:
    km = manager(tmp_path, fast_specs())
    assert use_ipc(km)
    assert (km.transport, km.ip) == ("ipc", str(tmp_path / "kernel-abc-ipc"))

    assert not use_ipc(manager(tmp_path, KernelSpecManager()))  # ipykernel as shipped
    config = Config({"KernelManager": {"transport": "tcp"}})
    assert not use_ipc(manager(tmp_path, fast_specs(), config=config))
    remote = Config({"KernelManager": {"ip": "0.0.0.0"}})
    assert not use_ipc(manager(tmp_path, fast_specs(), config=remote))
    relative = KernelManager(
        kernel_name="python3", kernel_spec_manager=fast_specs(), connection_file="kernel-abc.json"
    )
    assert not use_ipc(relative)


@pytest.mark.slow
async def test_kernel_runs_restarts_and_cleans_up_over_ipc(tmp_path: Path) -> None:
    # pytest's tmp_path is too deep for socket paths (the fallback to TCP would kick in).
    with tempfile.TemporaryDirectory(prefix="ipc-") as short:
        await run_restart_cleanup(Path(short), tmp_path)


@pytest.mark.slow
async def test_deep_runtime_dir_puts_sockets_in_the_short_private_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / "runtime"
    deep.mkdir(parents=True)
    short = short_socket_dir()
    assert short is not None
    await run_restart_cleanup(deep, tmp_path, sockets_in=Path(short))


async def run_restart_cleanup(
    runtime: Path, tmp_path: Path, sockets_in: Path | None = None
) -> None:
    runtime.chmod(0o700)
    kernels = AsyncMappingKernelManager(
        kernel_spec_manager=fast_specs(), connection_dir=str(runtime), root_dir=str(tmp_path)
    )
    assert enable_kernel_ipc(kernels) and enable_lean_activity(kernels)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    kernel_id = await kernels.start_kernel(kernel_name="python3", env=env)
    km = kernels.get_kernel(kernel_id)
    info = json.loads(Path(km.connection_file).read_text())
    assert info["transport"] == "ipc"
    sockets = [Path(f"{info['ip']}-{info[k]}") for k in ("shell_port", "iopub_port", "hb_port")]
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        where = sockets_in or runtime
        assert all(stat.S_ISSOCK(s.stat().st_mode) and s.parent == where for s in sockets)
        for code, expected in (("1+1", "2"), ("input_ok = 3; input_ok", "3")):
            msg_id = client.execute(code)
            while True:
                msg = await client.get_iopub_msg(timeout=20)
                if msg["parent_header"].get("msg_id") == msg_id:
                    if msg["msg_type"] == "execute_result":
                        assert msg["content"]["data"]["text/plain"] == expected
                        break
        await kernels.restart_kernel(kernel_id)
        await client.wait_for_ready(timeout=60)
        assert km.transport == "ipc"
    finally:
        client.stop_channels()
        await kernels.shutdown_kernel(kernel_id, now=True)
    await asyncio.sleep(0)
    assert not any(s.exists() for s in sockets)
