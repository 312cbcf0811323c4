"""Connect the server to its fast kernels over Unix sockets (ZMQ ``ipc``) instead of TCP.

Why: every kernel message crosses the ZMQ link between kernel and server, and a ``1+1`` makes
about ten such crossings (request in; status, input, result, reply, status out; each IOPub
message twice, for the websocket and the activity watcher). Over loopback TCP each crossing
pays the TCP stack; over a Unix socket less (benchmarks/README.md has the figures). It also
keeps kernel traffic off the network stack altogether: jupyter_client warns that TCP kernel
traffic is unencrypted, while the socket files live in the user's private runtime directory.

Which kernels: only those that run the fast kernel (kernelspec.py), which is ipykernel and so
speaks ``ipc``; kernels of other languages may not. Left on TCP: kernels whose manager has a
configured ``transport`` or ``ip`` (``c.KernelManager.transport = "tcp"``, a remote ``ip``),
and Windows (no ZMQ ``ipc``).

Where the sockets go: next to the connection file, ``<runtime dir>/kernel-<id>-ipc-<n>``, in
the runtime directory jupyter_core creates private to the user (0700). A Unix socket address
holds at most 107 bytes (103 on macOS), so a runtime directory deeper than ~50 characters (a
home under a hub's data directory, for instance) cannot hold them; those kernels get a short
private directory instead: ``$XDG_RUNTIME_DIR/amalthea-kernels`` or ``<tmp>/amalthea-<uid>``,
used only if it is a real directory owned by this user with no group or other access
(:func:`private_dir`), else the kernel stays on TCP. jupyter_client removes the sockets when
the kernel shuts down, wherever they are.

How: wrap the multi-kernel manager's ``kernel_manager_factory``, so each new kernel manager is
switched to ``ipc`` before it writes its connection file.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from typing import Any

from .kernelspec import FAST_KERNEL_MODULE

__all__ = ["enable_kernel_ipc", "ipc_prefix", "private_dir", "short_socket_dir", "use_ipc"]

# sun_path is 104 bytes on macOS and the BSDs, 108 on Linux; both include the final NUL.
SUN_PATH_MAX = 103
# jupyter_client numbers a kernel's ipc sockets from 1 up ("-1" .. "-5"); leave room for two
# digits in case some are left over from a crashed kernel.
SUFFIX_ROOM = len("-99")


def ipc_prefix(connection_file: str, short_dir: str | None = None) -> str | None:
    """The socket path prefix for a kernel with this connection file: next to it, else in
    ``short_dir``; ``None`` if neither fits a Unix socket address."""
    name = os.path.splitext(connection_file)[0]
    candidates = [name + "-ipc"]
    if short_dir is not None:
        candidates.append(os.path.join(short_dir, os.path.basename(name) + "-ipc"))
    for prefix in candidates:
        if len(os.fsencode(prefix)) + SUFFIX_ROOM <= SUN_PATH_MAX:
            return prefix
    return None


def private_dir(path: str) -> bool:
    """Create ``path`` (mode 0700) if missing; ``True`` if it is then a directory, not a
    symlink, owned by us and closed to group and others. Anything else (another user's
    directory in /tmp, a symlink planted there) is refused, never repaired."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def short_socket_dir() -> str | None:
    """A private directory with a short path for kernel sockets, or ``None``."""
    candidates = [os.path.join(tempfile.gettempdir(), f"amalthea-{os.getuid()}")]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        candidates.insert(0, os.path.join(runtime, "amalthea-kernels"))
    for path in candidates:
        if private_dir(path):
            return path
    return None


def _runs_fast_kernel(km: Any) -> bool:
    try:
        argv = list(km.kernel_spec.argv)
    except Exception:  # no such spec, a provisioner without one: jupyter_client will say so
        return False
    return argv[1:3] == ["-m", FAST_KERNEL_MODULE]


def use_ipc(km: Any) -> bool:
    """Switch a new, not yet started kernel manager to ``ipc`` if it is safe; ``True`` if so."""
    if sys.platform == "win32" or not os.path.isabs(km.connection_file or ""):
        return False  # a relative path would put the sockets in whatever the cwd is
    if km.trait_has_value("transport") or km.trait_has_value("ip"):
        return False  # configured, or already computed from the TCP default: leave it alone
    if not _runs_fast_kernel(km):
        return False
    prefix = ipc_prefix(km.connection_file)
    if prefix is None:
        prefix = ipc_prefix(km.connection_file, short_socket_dir())
    if prefix is None:
        km.log.info("Kernel path too long for a Unix socket, using TCP: %s", km.connection_file)
        return False
    km.transport = "ipc"
    km.ip = prefix
    return True


def enable_kernel_ipc(kernel_manager: Any) -> bool:
    """Make ``kernel_manager`` (a MultiKernelManager) start fast kernels over ``ipc``."""
    factory = getattr(kernel_manager, "kernel_manager_factory", None)
    if not callable(factory):
        return False
    if sys.platform == "win32":
        return False

    def create(*args: Any, **kwargs: Any) -> Any:
        km = factory(*args, **kwargs)
        use_ipc(km)
        return km

    kernel_manager.kernel_manager_factory = create
    return True
