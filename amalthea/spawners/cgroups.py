"""Memory, CPU and process-count limits for local servers, through cgroups.

One group per server, ``amalthea/<user>-<server>``, holding the server and everything it
starts (kernels, terminals): a limit applies to the sum. The spawner starts the process, then
calls ``await limiter.apply(pid, mem_bytes, cpu_cores, pids)``; ``cleanup()`` after it exits.

Which cgroup version: v2 when a cgroup2 hierarchy offers the needed controllers, else v1.
Hybrid hosts (like the CI VM) mount cgroup2 with no useful controllers next to v1
hierarchies, so "is cgroup2 mounted" is the wrong test; "does it have memory/cpu/pids" is.

Where the groups go:

- v1: under the hub's own group in each hierarchy (from /proc/self/cgroup), so a hub that
  itself runs in a limited group (a container, a systemd slice) keeps its servers inside it.
- v2: under ``<mount>/amalthea``. Not under the hub's own group: v2 forbids processes in a
  group whose controllers are delegated to children, and the hub's group holds the hub.

Memory limits include swap where the kernel accounts it (v1 ``memsw``, v2 ``swap.max = 0``):
otherwise a "2G" server on a host with swap can use 2G plus all of swap.

Moving the pid in after start leaves a short window where the server could fork a child that
stays outside; for a server that only starts kernels later, that window is empty in practice.
:meth:`CgroupLimiter.attach` is synchronous and may also be called from a ``preexec_fn``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupError", "CgroupLimiter"]

CPU_PERIOD_US = 100_000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class CgroupError(RuntimeError):
    """Limits cannot be enforced; the message says why and what to do."""


@dataclass(frozen=True)
class _Hierarchy:
    mount: Path
    controllers: frozenset[str]
    version: int


class CgroupLimiter:
    """Create, fill, limit and remove one server's cgroup(s)."""

    def __init__(
        self,
        name: str,
        *,
        parent: str = "amalthea",
        mounts_file: str = "/proc/self/mounts",
        self_cgroup_file: str = "/proc/self/cgroup",
    ) -> None:
        self.name = _SAFE_NAME.sub("_", name) or "server"
        self.parent = parent
        self._mounts_file = mounts_file
        self._self_cgroup_file = self_cgroup_file
        #: controller -> group directory, filled by apply()
        self.groups: dict[str, Path] = {}
        self.version = 0

    # ---- public ----------------------------------------------------------------------------
    async def apply(
        self, pid: int, mem_bytes: int | None, cpu_cores: float | None, pids: int | None
    ) -> None:
        """Create the group with these limits (None / 0 = no limit) and move ``pid`` into it."""
        await asyncio.to_thread(self.create, mem_bytes, cpu_cores, pids)
        await asyncio.to_thread(self.attach, pid)

    def create(self, mem_bytes: int | None, cpu_cores: float | None, pids: int | None) -> None:
        needed = {c for c, v in (("memory", mem_bytes), ("cpu", cpu_cores), ("pids", pids)) if v}
        if not needed:
            return
        self._make_groups(needed)
        if mem_bytes:
            self._limit_memory(mem_bytes)
        if cpu_cores:
            self._limit_cpu(cpu_cores)
        if pids:
            self._write("pids", "pids.max", str(pids))

    def attach(self, pid: int) -> None:
        for group in set(self.groups.values()):
            self._write_file(group / "cgroup.procs", str(pid))

    async def cleanup(self, kill: bool = True) -> None:
        """Remove the group(s); with ``kill``, SIGKILL what the server left behind first."""
        await asyncio.to_thread(self._cleanup, kill)

    def oom_kills(self) -> int:
        """How many processes the kernel killed in the group for going past the memory limit."""
        group = self.groups.get("memory")
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (group / name).read_text() if group else ""
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def pids_in_group(self) -> set[int]:
        found: set[int] = set()
        for group in set(self.groups.values()):
            try:
                found |= {int(p) for p in (group / "cgroup.procs").read_text().split()}
            except FileNotFoundError:
                pass
        return found

    # ---- creating ----------------------------------------------------------------------------
    def _make_groups(self, needed: set[str]) -> None:
        hierarchies = self._hierarchies()
        v2 = [h for h in hierarchies if h.version == 2 and needed <= h.controllers]
        if v2:
            self.version = 2
            self._make_v2(v2[0], needed)
            return
        self.version = 1
        for controller in sorted(needed):
            match = [h for h in hierarchies if h.version == 1 and controller in h.controllers]
            if not match:
                offered = {f"v{h.version} {h.mount}": sorted(h.controllers) for h in hierarchies}
                raise CgroupError(
                    f"The {controller!r} cgroup controller is not available on this host "
                    f"(hierarchies: {offered or 'none mounted'}), so the "
                    f"{_SETTING[controller]} of local servers cannot be enforced. Enable the "
                    f"controller, or unset {_SETTING[controller]} to start without it."
                )
            base = match[0].mount / self._own_path(controller).lstrip("/")
            self.groups[controller] = self._mkdir(base / self.parent / self.name)

    def _make_v2(self, h: _Hierarchy, needed: set[str]) -> None:
        parent = self._mkdir(h.mount / self.parent)
        enable = " ".join(f"+{c}" for c in sorted(needed))
        for level in (h.mount, parent):
            self._write_file(level / "cgroup.subtree_control", enable)
        group = self._mkdir(parent / self.name)
        self.groups = dict.fromkeys(needed, group)

    def _limit_memory(self, mem_bytes: int) -> None:
        if self.version == 2:
            self._write("memory", "memory.max", str(mem_bytes))
            if (self.groups["memory"] / "memory.swap.max").exists():
                self._write("memory", "memory.swap.max", "0")
            return
        self._write("memory", "memory.limit_in_bytes", str(mem_bytes))
        if (self.groups["memory"] / "memory.memsw.limit_in_bytes").exists():
            # memsw counts memory + swap and may not be below limit_in_bytes: write it second
            self._write("memory", "memory.memsw.limit_in_bytes", str(mem_bytes))

    def _limit_cpu(self, cores: float) -> None:
        quota = max(1000, int(cores * CPU_PERIOD_US))
        if self.version == 2:
            self._write("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            self._write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US))
            self._write("cpu", "cpu.cfs_quota_us", str(quota))

    # ---- removing ----------------------------------------------------------------------------
    def _cleanup(self, kill: bool) -> None:
        if kill:
            deadline = time.monotonic() + 5
            while (left := self.pids_in_group()) and time.monotonic() < deadline:
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
        for group in set(self.groups.values()):
            for _ in range(50):  # the kernel lets go of exiting tasks asynchronously
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        self.groups.clear()

    # ---- discovery and file access -----------------------------------------------------------
    def _hierarchies(self) -> list[_Hierarchy]:
        found = []
        for line in Path(self._mounts_file).read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            mount, fstype, options = Path(fields[1]), fields[2], set(fields[3].split(","))
            if fstype == "cgroup2":
                try:
                    ctrls = frozenset((mount / "cgroup.controllers").read_text().split())
                except OSError:
                    ctrls = frozenset()
                found.append(_Hierarchy(mount, ctrls, 2))
            elif fstype == "cgroup":
                found.append(_Hierarchy(mount, frozenset(options & set(_SETTING)), 1))
        return found

    def _own_path(self, controller: str) -> str:
        """The hub's own group in the v1 hierarchy holding ``controller``."""
        for line in Path(self._self_cgroup_file).read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return path
        return "/"

    def _mkdir(self, path: Path) -> Path:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except PermissionError as e:
            raise CgroupError(
                f"Cannot create cgroup {path}: permission denied (running as uid {os.getuid()}). "
                "Enforcing mem_limit/cpu_limit/pids_limit for local servers needs the hub to run "
                "as root, or (cgroup v2) a cgroup subtree delegated to the hub's user. Unset "
                "those limits to start servers without them."
            ) from e
        return path

    def _write(self, controller: str, filename: str, value: str) -> None:
        self._write_file(self.groups[controller] / filename, value)

    @staticmethod
    def _write_file(path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as e:
            raise CgroupError(f"Cannot write {value!r} to {path}: {e.strerror}") from e


_SETTING = {"memory": "mem_limit", "cpu": "cpu_limit", "pids": "pids_limit"}
