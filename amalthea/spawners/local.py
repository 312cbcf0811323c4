"""Local-process spawners: each server is a child process on the hub's machine.

- ``local-shared`` (:class:`LocalSharedSpawner`): every server runs as the hub's own Unix user,
  in a per-user directory ``<data_dir>/users/<name>`` that is also its ``HOME``. The default when
  the hub is not root; right for one-person and development hubs, not a security boundary
  between users' code.
- ``local`` (:class:`LocalSpawner`): runs the server as the Unix account named like the hub user,
  with its home directory as working directory. Needs root. Creates missing accounts only when
  ``create_system_users`` is on.

Servers start in their own session (process group) with output going to a log file, not a pipe:
they survive a hub restart (no SIGHUP, no SIGPIPE), and the restarted hub finds them again from
``get_state()`` (pid + kernel start time, so a recycled pid is never mistaken for our server).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from traitlets import Bool, Float, List, Unicode

from amalthea.spawners.base import ServerAddress, Spawner, SpawnError
from amalthea.spawners.cgroups import CgroupLimiter
from amalthea.spawners.naming import safe_name

__all__ = ["LocalSharedSpawner", "LocalSpawner"]

UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if gone/zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def _open_log(path: Path, uid: int | None, gid: int | None) -> Any:
    """A fresh log file per start, owned by the server's user (it may reopen it)."""
    logf = open(path, "wb")  # closed by the caller once the child has it
    if uid is not None:
        os.fchown(logf.fileno(), uid, gid if gid is not None else -1)
    return logf


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * lines))
            data = f.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]


class _LocalProcessSpawner(Spawner):
    env_keep = List(
        Unicode(),
        ["PATH", "LANG", "LC_ALL", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_ROOT",
         "CONDA_DEFAULT_ENV", "JUPYTERHUB_SINGLEUSER_APP"],
        help="Environment variables of the hub passed on to servers.",
    ).tag(config=True)  # fmt: skip
    stop_timeout = Float(
        10, help="Seconds to wait after SIGTERM before the server is killed (SIGKILL)."
    ).tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pid: int | None = None
        self.start_time: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path: Path | None = None
        #: the server's cgroup(s) when limits are set; kernels it starts are inside too
        self.limiter: CgroupLimiter | None = None
        self._oom_kills = 0
        self._adopted = False  # found again after a hub restart: limiter not built yet

    # ---- what subclasses decide ----------------------------------------------------------
    def account(self) -> tuple[int | None, int | None, list[int], Path, str]:
        """(uid, gid, extra gids, home, shell); uid None = run as the hub's user."""
        raise NotImplementedError

    # ---- contract ------------------------------------------------------------------------
    def _log_file(self) -> Path:
        ctx = self.context
        name = safe_name(ctx.username) + (
            f"--{safe_name(ctx.server_name)}" if ctx.server_name else ""
        )
        path = Path(ctx.data_dir) / "logs" / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _resolve_cmd(self) -> list[str]:
        cmd = self.command()
        if cmd and "/" not in cmd[0]:
            beside = Path(sys.executable).with_name(cmd[0])
            if beside.exists():
                cmd[0] = str(beside)
            elif shutil.which(cmd[0]) is None:
                raise SpawnError(
                    f"The server command {cmd[0]!r} was not found on the hub's PATH "
                    "(c.Spawner.cmd). Install it or give its full path.",
                    layer="spawner",
                )
        return cmd

    async def start(self) -> ServerAddress:
        uid, gid, groups, home, shell = self.account()
        env = {k: os.environ[k] for k in self.env_keep if k in os.environ}
        user = pwd.getpwuid(uid).pw_name if uid is not None else self.context.username
        env.update(USER=user, HOME=str(home), SHELL=shell)
        env.update(self.build_env())
        cwd = home
        if self.notebook_dir:
            cwd = Path(self.notebook_dir.replace("~", str(home), 1))
        self.log_path = self._log_file()
        cmd = self._resolve_cmd()
        kwargs: dict[str, Any] = {}
        if uid is not None:
            kwargs.update(user=uid, group=gid, extra_groups=groups)
        try:
            with _open_log(self.log_path, uid, gid) as logf:
                self.proc = await asyncio.create_subprocess_exec(
                    *cmd, env=env, cwd=str(cwd), stdin=asyncio.subprocess.DEVNULL, stdout=logf,
                    stderr=asyncio.subprocess.STDOUT, start_new_session=True, **kwargs,
                )  # fmt: skip
        except OSError as e:
            raise SpawnError(f"Could not run {cmd[0]!r}: {e}", layer="spawner") from e
        self.pid = self.proc.pid
        self.start_time = _proc_start_time(self.pid)
        await self._apply_limits()
        return ServerAddress(self.ip or "127.0.0.1", self.port)

    def _limits_set(self) -> bool:
        return self.mem_limit is not None or self.cpu_limit is not None or bool(self.pids_limit)

    def _cgroup_name(self) -> str:
        ctx = self.context
        return safe_name(ctx.username) + (
            f"--{safe_name(ctx.server_name)}" if ctx.server_name else ""
        )

    async def _apply_limits(self) -> None:
        if not self._limits_set():
            return
        assert self.pid is not None
        self.limiter = CgroupLimiter(self._cgroup_name())
        self._oom_kills = 0
        try:
            await self.limiter.apply(
                self.pid, self.mem_limit_bytes, self.cpu_limit_cores, self.pids_limit
            )
        except Exception as e:
            # no server without its limits: they may be what keeps the machine usable
            self._signal(signal.SIGKILL)
            await self.wait_for_exit(5)
            await self._release_cgroup()
            raise SpawnError(f"Could not apply resource limits: {e}", layer="cgroups") from e

    async def _release_cgroup(self) -> None:
        """Kill what the server left in its group (orphaned kernels), then remove the group."""
        if self.limiter is None and self._adopted and self._limits_set():
            self._adopted = False
            # found again after a hub restart: the same name and limits give the same group
            limiter = CgroupLimiter(self._cgroup_name())
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    limiter.create, self.mem_limit_bytes, self.cpu_limit_cores, self.pids_limit
                )
                self.limiter = limiter
        if self.limiter is None:
            return
        limiter, self.limiter = self.limiter, None
        self._oom_kills = max(self._oom_kills, limiter.oom_kills())
        try:
            await limiter.cleanup(kill=True)
        except Exception:
            self.log.exception("removing the cgroup of %s", self.context.username)

    async def exit_error(self) -> SpawnError | None:
        """Names the memory limit when the kernel's OOM killer ended the server itself."""
        if await self.poll() is None:
            return None
        if self._oom_kills and self.proc is not None and self.proc.returncode == -signal.SIGKILL:
            return SpawnError(
                f"The server was killed for using more than its memory limit ({self.mem_limit}).",
                layer="single-user server",
                log_tail=await self.logs(self.log_lines),
            )
        return None

    async def poll(self) -> int | None:
        if self.proc is not None:
            if self.proc.returncode is not None:
                await self._release_cgroup()
                return self.proc.returncode
            return None
        if self.pid is None:
            return 0
        now = _proc_start_time(self.pid)
        return None if now is not None and now == self.start_time else 0

    async def stop(self, now: bool = False) -> None:
        if self.pid is None or await self.poll() is not None:
            return
        self._signal(signal.SIGKILL if now else signal.SIGTERM)
        if not now and await self.wait_for_exit(self.stop_timeout) is None:
            self._signal(signal.SIGKILL)
        await self.wait_for_exit(5)
        await self._release_cgroup()

    def _signal(self, sig: int) -> None:
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)  # the whole session: the server and what it started
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)

    async def wait_for_exit(self, timeout: float) -> int | None:
        if self.proc is not None:
            try:
                async with asyncio.timeout(timeout):
                    return await self.proc.wait()
            except TimeoutError:
                return None
        return await super().wait_for_exit(timeout)

    def get_state(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_time": self.start_time,
                "log": str(self.log_path) if self.log_path else None}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self.pid = state.get("pid")
        self.start_time = state.get("start_time")
        self._adopted = self.pid is not None
        self.log_path = Path(state["log"]) if state.get("log") else None

    async def logs(self, lines: int = 50) -> list[str]:
        path = self.log_path or self._log_file()
        return await asyncio.to_thread(_tail, path, lines)


class LocalSharedSpawner(_LocalProcessSpawner):
    """Runs every server as the hub's own user in ``<data_dir>/users/<name>``."""

    allow_root = Bool(
        True,
        help="When the hub runs as root, pass --allow-root to the server (jupyter_server refuses "
        "to run as root otherwise). Prefer the 'local' spawner, which runs as each user.",
    ).tag(config=True)
    users_dir = Unicode("", help="Where per-user directories live; default <data_dir>/users.").tag(
        config=True
    )

    def account(self) -> tuple[int | None, int | None, list[int], Path, str]:
        base = Path(self.users_dir or Path(self.context.data_dir) / "users")
        home = base / safe_name(self.context.username)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return None, None, [], home, os.environ.get("SHELL", "/bin/sh")

    def command(self) -> list[str]:
        cmd = super().command()
        if os.geteuid() == 0 and self.allow_root and "--allow-root" not in cmd:
            cmd.append("--allow-root")
        return cmd


class LocalSpawner(_LocalProcessSpawner):
    """Runs the server as the user's own Unix account (the hub must be root)."""

    create_system_users = Bool(
        False, help="Create a missing Unix account (useradd -m) for a hub user at first spawn."
    ).tag(config=True)
    useradd_cmd = List(
        Unicode(), ["useradd", "-m", "-s", "/bin/bash"], help="Command that creates an account."
    ).tag(config=True)

    def account(self) -> tuple[int | None, int | None, list[int], Path, str]:
        name = self.context.username
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            pw = None
        if pw is None:
            raise SpawnError(
                f"There is no Unix account {name!r} on this machine. An admin can create it, or "
                "set c.LocalSpawner.create_system_users = True.",
                layer="spawner",
            )
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
        return pw.pw_uid, pw.pw_gid, groups, Path(pw.pw_dir), pw.pw_shell or "/bin/sh"

    async def start(self) -> ServerAddress:
        if os.geteuid() != 0:
            raise SpawnError(
                "The 'local' spawner runs servers as each user's Unix account and needs the hub "
                "to run as root. Use c.Amalthea.spawner_class = 'local-shared' otherwise.",
                layer="spawner",
            )
        await self._ensure_account()
        return await super().start()

    async def _ensure_account(self) -> None:
        name = self.context.username
        try:
            pwd.getpwnam(name)
            return
        except KeyError:
            pass
        if not self.create_system_users:
            return  # account() explains
        if not UNIX_NAME.match(name):
            raise SpawnError(
                f"{name!r} cannot be a Unix account name (a-z, 0-9, '_', '-', at most 32).",
                layer="spawner",
            )
        proc = await asyncio.create_subprocess_exec(
            *self.useradd_cmd,
            name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise SpawnError(
                f"Creating the Unix account {name!r} failed: {out.decode(errors='replace').strip()}",
                layer="spawner",
            )
