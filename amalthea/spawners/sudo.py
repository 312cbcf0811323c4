"""SudoSpawner: an unprivileged hub starts servers as other Unix users through one sudo rule.

The hub never runs as root. For every action it runs
``sudo -n -u <user> <helper_cmd> <action> ...`` where the helper
(:mod:`amalthea.spawners.sudo_helper`) starts the server detached, or polls, signals, or
reads the log of a pid it started. The sudoers rule names exactly that helper command and
the users (or a group) it may run as; see docs/spawners/sudo.md.

Rejected alternative: keeping a long-lived helper per user (what an older design did with a
JSON-over-stdio mediator). It is a privileged process per user to supervise and restart; the
one-shot helper costs ~10 ms of sudo per call and holds nothing between calls.

The server runs on the hub's host, so the hub picks its port (a free one, unless ``port`` is
set) and the server's address is known as soon as the helper returns.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
from typing import Any

from traitlets import Float, List, Unicode

from amalthea.spawners.base import ServerAddress, Spawner, SpawnError

_USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$", re.IGNORECASE)


class SudoSpawner(Spawner):
    sudo_cmd = List(
        Unicode(),
        ["sudo", "-n", "-u", "{username}"],
        help="How to become the user; -n makes a missing rule fail at once instead of "
        "prompting for a password.",
    ).tag(config=True)
    helper_cmd = List(
        Unicode(),
        [sys.executable, "-m", "amalthea.spawners.sudo_helper"],
        help="The helper command, exactly as the sudoers rule names it.",
    ).tag(config=True)
    startup_grace = Float(
        0.5, help="Seconds the helper watches a new server; one that exits sooner fails the spawn with its output."
    ).tag(config=True)  # fmt: skip
    stop_timeout = Float(5, help="Seconds between SIGTERM and SIGKILL on stop.").tag(config=True)
    helper_timeout = Float(30, help="Seconds one helper call may take.").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pid = 0
        self.start_ticks = 0
        self.server_port = 0

    @property
    def log_name(self) -> str:
        return f"server-{self.context.server_name}" if self.context.server_name else "server"

    async def start(self) -> ServerAddress:
        unenforced = [n for n in ("mem_limit", "cpu_limit") if getattr(self, n) is not None]
        unenforced += ["pids_limit"] if self.pids_limit else []
        if unenforced:
            # an unprivileged hub cannot make cgroups: refuse rather than run unlimited
            raise SpawnError(
                f"The sudo spawner cannot enforce {', '.join(unenforced)} (the hub is not root "
                "and makes no cgroups). Unset them, or use the systemd or local spawner, which "
                "enforce them (docs/spawners/limits.md).",
                layer="spawner",
            )
        port = self.port or _free_port(self.ip)
        env = self.build_env()
        prefix = self.context.url_prefix
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        env.update(JUPYTERHUB_SERVICE_URL=f"http://{host}:{port}{prefix}", AMALTHEA_PORT=str(port))
        spec = {
            "cmd": self.command(),
            "env": env,
            "log": self.log_name,
            "grace": self.startup_grace,
        }
        result = await self._helper(["start"], stdin=json.dumps(spec))
        if "exit" in result:
            raise SpawnError(
                f"The server exited at once with status {result['exit']}.",
                layer="single-user server",
                log_tail=list(result.get("log_tail", [])),
            )
        self.pid, self.start_ticks, self.server_port = int(result["pid"]), int(result["start_time"]), port  # fmt: skip
        self.log.info("Started server for %s as pid %s on port %s", self.context.username, self.pid, port)  # fmt: skip
        return ServerAddress(self.ip, port)

    async def poll(self) -> int | None:
        if not self.pid:
            return 0
        result = await self._helper(["poll", str(self.pid), str(self.start_ticks)])
        # exit status is unknown: the server is not our child (it outlives the helper)
        return None if result["alive"] else 0

    async def stop(self, now: bool = False) -> None:
        if not self.pid:
            return
        await self._signal("KILL" if now else "TERM")
        if await self.wait_for_exit(self.stop_timeout) is None:
            self.log.warning("Server pid %s ignored SIGTERM for %ss; killing it", self.pid, self.stop_timeout)  # fmt: skip
            await self._signal("KILL")
            await self.wait_for_exit(self.stop_timeout)
        self.pid = self.start_ticks = self.server_port = 0

    def get_state(self) -> dict[str, Any]:
        if not self.pid:
            return {}
        return {"pid": self.pid, "start_time": self.start_ticks, "port": self.server_port}

    def load_state(self, state: dict[str, Any]) -> None:
        self.pid = int(state.get("pid", 0))
        self.start_ticks = int(state.get("start_time", 0))
        self.server_port = int(state.get("port", 0))

    async def logs(self, lines: int = 50) -> list[str]:
        try:
            result = await self._helper(["logs", self.log_name, str(lines)])
        except SpawnError as e:
            return [f"(could not read the log: {e.user_message})"]
        return list(result["lines"])

    async def _signal(self, name: str) -> None:
        await self._helper(["signal", str(self.pid), str(self.start_ticks), name])

    async def _helper(self, args: list[str], stdin: str | None = None) -> dict[str, Any]:
        user = self.context.username
        if not _USERNAME.match(user):
            raise SpawnError(f"{user!r} is not a valid Unix user name for the sudo spawner.")
        cmd = [part.format(username=user) for part in self.sudo_cmd] + [*self.helper_cmd, *args]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), self.helper_timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SpawnError(f"The sudo helper did not answer within {self.helper_timeout} s.") from None  # fmt: skip
        try:
            result: dict[str, Any] = json.loads(out)
        except ValueError:
            result = {}
        if proc.returncode != 0 or "error" in result or not result:
            detail = result.get("error") or err.decode(errors="replace").strip() or out.decode(errors="replace").strip()  # fmt: skip
            hint = ""
            if "password is required" in detail or "not allowed" in detail:
                hint = (
                    f" The hub's user may not run the helper as {user!r}: check the sudoers rule "
                    "(docs/spawners/sudo.md) names this user or their group and exactly "
                    f"{' '.join(self.helper_cmd)}."
                )
            raise SpawnError(
                f"Could not {args[0]} the server as {user!r}: {detail}.{hint}", layer="spawner"
            )
        return result


def _free_port(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])
