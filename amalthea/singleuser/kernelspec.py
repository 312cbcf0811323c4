"""Start the server's own Python kernels as the fast kernel (kernel/) instead of ipykernel's.

Which kernel specs: those that would run ``ipykernel_launcher`` (or ``ipykernel``) with this
server's Python and the local provisioner — the default ``python3`` spec, and any other spec
that is the same command. For those, ``-m ipykernel_launcher`` becomes
``-m amalthea.singleuser.kernel``; the rest of the command line, ``env`` and metadata are kept.
The fast kernel is an ``IPKernelApp`` and takes the same options.

Left alone: specs for another interpreter (a conda env, a ``--user`` spec from another venv:
amalthea may not be installed there), other languages, remote provisioners (the command runs
elsewhere), and everything when the server uses a kernel gateway.

How: wrap the kernel spec manager's ``kernel_spec_class`` (configurable in jupyter_client, and
used to build every spec) in a subclass that rewrites ``argv`` once the spec is loaded. A
configured class is kept underneath, as nodelay.py does for the websocket class. Rejected:
setting ``ServerApp.kernel_spec_manager_class`` from the extension (the starter extension's
config wins over the user's, so it would replace a configured manager); editing kernel.json
files (not ours; and the native spec is often not a file at all).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .mixins import with_mixin

__all__ = ["FAST_KERNEL_MODULE", "enable_fast_kernel", "fast_argv", "with_fast_kernel"]

FAST_KERNEL_MODULE = "amalthea.singleuser.kernel"
STOCK_MODULES = frozenset({"ipykernel_launcher", "ipykernel"})
LOCAL_PROVISIONER = "local-provisioner"

# jupyter_client runs sys.executable for these names (KernelManager.format_kernel_cmd).
_THIS_PYTHON_NAMES = frozenset(
    {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
)


def runs_this_python(executable: str) -> bool:
    # Compare paths without resolving symlinks: every venv's python links to the same base
    # interpreter, but only ours has amalthea installed.
    return executable in _THIS_PYTHON_NAMES or os.path.normpath(executable) == os.path.normpath(
        sys.executable
    )


def fast_argv(argv: list[str], metadata: dict[str, Any] | None = None) -> list[str] | None:
    """The fast kernel's command for a spec's ``argv``, or ``None`` to leave the spec alone."""
    if len(argv) < 3 or argv[1] != "-m" or argv[2] not in STOCK_MODULES:
        return None
    if not runs_this_python(argv[0]):
        return None
    provisioner = (metadata or {}).get("kernel_provisioner", {}).get("provisioner_name")
    if provisioner not in (None, LOCAL_PROVISIONER):
        return None
    return [argv[0], "-m", FAST_KERNEL_MODULE, *argv[3:]]


class FastKernelSpecMixin:
    """A KernelSpec whose ``argv`` runs the fast kernel when :func:`fast_argv` allows."""

    argv: list[str]
    metadata: dict[str, Any]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        argv = fast_argv(list(self.argv), self.metadata)
        if argv is not None:
            self.argv = argv


def with_fast_kernel(cls: type) -> type:
    """``cls`` (a KernelSpec class) with :class:`FastKernelSpecMixin` in front."""
    return with_mixin(FastKernelSpecMixin, cls, "Fast", __name__)


def enable_fast_kernel(kernel_spec_manager: Any) -> bool:
    """Make ``kernel_spec_manager`` hand out fast-kernel specs; ``False`` if it cannot."""
    spec_class = getattr(kernel_spec_manager, "kernel_spec_class", None)
    if not isinstance(spec_class, type):
        return False
    kernel_spec_manager.kernel_spec_class = with_fast_kernel(spec_class)
    return True
