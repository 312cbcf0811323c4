"""SystemdSpawner: each server is a transient systemd service made with ``systemd-run``.

systemd does the supervision, limits and logging: the unit carries MemoryMax/CPUQuota/
TasksMax, PrivateTmp and the Unix user (or DynamicUser); the journal keeps its output.
The hub only remembers the unit name, so a restarted hub finds running servers again.

The server's environment (which holds its API token) goes through an ``EnvironmentFile``
readable only by root, never through ``--setenv``: command lines are visible to every
local user in ``ps``.

Needs systemd as PID 1 and root (or polkit rights to manage system units).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import Any

from traitlets import Bool, Float, List, Unicode

from amalthea.spawners.base import ServerAddress, Spawner, SpawnError
from amalthea.spawners.naming import render

SERVER = "single-user server"


class SystemdSpawner(Spawner):
    """Start each server as a transient systemd service."""

    unit_name_template = Unicode(
        "amalthea-{username}{server_suffix}",
        help="Unit name (without .service); {username}, {server_suffix} are made unit-safe.",
    ).tag(config=True)
    unix_user_template = Unicode(
        "{raw_username}",
        help="Unix user the server runs as (User=). '' runs it as root; ignored with dynamic_user.",
    ).tag(config=True)
    dynamic_user = Bool(
        False,
        help="Run under a throwaway uid (DynamicUser=yes) with a persistent state directory "
        "/var/lib/<state_directory_template> as its home.",
    ).tag(config=True)
    state_directory_template = Unicode(
        "amalthea-users/{username}", help="StateDirectory= for dynamic_user, also its HOME."
    ).tag(config=True)
    working_dir_template = Unicode(
        "",
        help="WorkingDirectory= of the server; '' = the user's home ('~').",
    ).tag(config=True)
    private_tmp = Bool(True, help="Give each server its own /tmp (PrivateTmp=yes).").tag(
        config=True
    )
    extra_properties = List(
        Unicode(), help="More unit properties, e.g. ['ProtectSystem=strict', 'Nice=5']."
    ).tag(config=True)
    command_timeout = Float(30, help="Seconds a systemctl/systemd-run call may take.").tag(
        config=True
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit = ""
        self.address: ServerAddress | None = None

    @property
    def unit_name(self) -> str:
        return render(self.unit_name_template, self.context.username, self.context.server_name)

    # ---- contract ----------------------------------------------------------------------
    async def start(self) -> ServerAddress:
        require_systemd()
        unit = self.unit_name
        # A failed unit of the same name from an earlier spawn would block systemd-run.
        await self._systemctl("stop", unit, check=False)
        await self._systemctl("reset-failed", unit, check=False)
        port = self.port or _free_port(self.ip)
        env = self.build_env()
        if "JUPYTERHUB_SERVICE_URL" not in self.environment:
            env["JUPYTERHUB_SERVICE_URL"] = f"http://{self.ip}:{port}{self.context.url_prefix}"
        env_file = self._write_env_file(unit, env)
        cmd = self.run_command(unit, env_file)
        code, out = await _run(cmd, self.command_timeout)
        if code != 0:
            raise SpawnError(
                f"systemd-run could not start unit {unit}.service: {out.strip()}",
                layer="spawner",
                log_tail=await self.logs(self.log_lines),
            )
        self.unit = unit
        self.address = ServerAddress(self.ip, port)
        return self.address

    def run_command(self, unit: str, env_file: Path) -> list[str]:
        """The systemd-run command line (public so admins and tests can see what runs)."""
        props = [f"EnvironmentFile={env_file}", *self._limit_properties()]
        if self.private_tmp:
            props.append("PrivateTmp=yes")
        ctx = self.context
        if self.dynamic_user:
            state_dir = render(self.state_directory_template, ctx.username, ctx.server_name)
            props += ["DynamicUser=yes", f"StateDirectory={state_dir}"]
            props.append(f"WorkingDirectory=/var/lib/{state_dir}")
            props.append(f"Environment=HOME=/var/lib/{state_dir}")
        else:
            user = render(self.unix_user_template, ctx.username, ctx.server_name)
            if user:
                props.append(f"User={user}")
            workdir = render(self.working_dir_template, ctx.username, ctx.server_name)
            props.append(f"WorkingDirectory={workdir or '~'}")
        props += self.extra_properties
        cmd = ["systemd-run", "--quiet", f"--unit={unit}"]
        cmd.append(f"--description=Amalthea server for {ctx.username}/{ctx.server_name}")
        cmd += [f"--property={p}" for p in props]
        return [*cmd, "--", *self.command()]

    async def poll(self) -> int | None:
        if not self.unit:
            return 0
        props = await self.show("LoadState", "ActiveState", "ExecMainStatus")
        if props.get("LoadState") == "not-found":
            return 0
        if props.get("ActiveState") in ("active", "activating", "reloading"):
            return None
        return int(props.get("ExecMainStatus") or 0)

    async def stop(self, now: bool = False) -> None:
        if not self.unit:
            return
        require_systemd()
        if now:
            await self._systemctl("kill", "--signal=SIGKILL", self.unit, check=False)
        await self._systemctl("stop", self.unit, check=False)
        await self._systemctl("reset-failed", self.unit, check=False)
        with contextlib.suppress(FileNotFoundError):
            self._env_path(self.unit).unlink()

    def get_state(self) -> dict[str, Any]:
        if not self.unit:
            return {}
        state: dict[str, Any] = {"unit": self.unit}
        if self.address:
            state.update(self.address.as_state())
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.unit = state.get("unit", "")
        self.address = ServerAddress.from_state(state) or self.address

    async def logs(self, lines: int = 50) -> list[str]:
        unit = self.unit or self.unit_name
        # Only this run's lines: the journal keeps every earlier server of the same name.
        invocation = (await self.show("InvocationID")).get("InvocationID", "")
        match = [f"_SYSTEMD_INVOCATION_ID={invocation}"] if invocation else [f"--unit={unit}"]
        cmd = ["journalctl", "--no-pager", "--output=cat", f"--lines={lines}", *match]
        code, out = await _run(cmd, self.command_timeout)
        return out.splitlines()[-lines:] if code == 0 else []

    async def exit_error(self) -> SpawnError | None:
        """Why the unit stopped, with its journal tail; None while it runs."""
        if await self.poll() is None:
            return None
        props = await self.show("Result", "ExecMainCode", "ExecMainStatus")
        result, status = props.get("Result", ""), props.get("ExecMainStatus", "")
        if result == "oom-kill" or (result == "signal" and status == "9" and self.mem_limit):
            reason = (
                f"was killed, most likely for using more than its memory limit ({self.mem_limit})"
            )
        elif result == "signal":
            reason = f"was killed by signal {status}"
        else:
            reason = f"exited with code {status or '?'} (systemd result: {result or 'unknown'})"
        return SpawnError(
            f"The server's unit {self.unit}.service {reason}.",
            layer=SERVER,
            log_tail=await self.logs(self.log_lines),
        )

    async def show(self, *names: str) -> dict[str, str]:
        """``systemctl show`` properties of the unit, e.g. show("MemoryMax", "TasksMax")."""
        args = [
            "show",
            *(f"--property={n}" for n in names),
            f"{self.unit or self.unit_name}.service",
        ]
        _, out = await self._systemctl(*args, check=False)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    # ---- helpers -----------------------------------------------------------------------
    def _limit_properties(self) -> list[str]:
        props = []
        if self.mem_limit_bytes is not None:
            # no swap on top, as with docker and local cgroups (applied where cgroup v2 runs)
            props += [f"MemoryMax={self.mem_limit_bytes}", "MemorySwapMax=0"]
        if self.cpu_limit_cores is not None:
            props.append(f"CPUQuota={round(self.cpu_limit_cores * 100)}%")
        if self.pids_limit:
            props.append(f"TasksMax={self.pids_limit}")
        return props

    def _env_path(self, unit: str) -> Path:
        return Path(self.context.data_dir).resolve() / f"{unit}.env"

    def _write_env_file(self, unit: str, env: dict[str, str]) -> Path:
        path = self._env_path(unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            for key, value in env.items():
                fh.write(f"{key}={_quote(value)}\n")
        return path

    async def _systemctl(self, *args: str, check: bool = True) -> tuple[int, str]:
        code, out = await _run(["systemctl", *args], self.command_timeout)
        if check and code != 0:
            raise SpawnError(f"systemctl {' '.join(args)} failed: {out.strip()}")
        return code, out


def require_systemd() -> None:
    """Raise a clear SpawnError unless systemd is the init system (what sd_booted() checks)."""
    if Path("/run/systemd/system").is_dir():
        return
    try:
        init = Path("/proc/1/comm").read_text().strip()
    except OSError:
        init = "unknown"
    raise SpawnError(
        "systemd is not running as init on this host: /run/systemd/system does not exist and "
        f"PID 1 is {init!r}. The systemd spawner needs a machine booted with systemd; use "
        "c.Amalthea.spawner_class = 'local' or 'sudo' here instead.",
        layer="spawner",
    )


def _quote(value: str) -> str:
    # EnvironmentFile= syntax: double quotes with backslash escapes keep any value intact.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


async def _run(cmd: list[str], timeout: float) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except FileNotFoundError as e:
        raise SpawnError(f"{cmd[0]} is not installed on this host: {e}") from e
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SpawnError(f"{' '.join(cmd[:2])} did not answer within {timeout} s") from None
    return proc.returncode or 0, out.decode(errors="replace")


def _free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])
