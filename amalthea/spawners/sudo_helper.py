"""The only program the hub runs through sudo: start, poll, signal a server and read its log.

It runs *as the target user* (``sudo -n -u alice python -m amalthea.spawners.sudo_helper``),
so the kernel already limits it to what alice could do herself; on top of that it stays narrow:

- refuses to run as root (a sudoers rule with ``ALL`` as runas would otherwise hand out root);
- ``signal`` accepts TERM, INT, KILL only, and only for a pid whose start time matches the one
  recorded at start (a recycled pid is never signalled);
- ``logs`` reads only ``~/.amalthea/logs/<name>.log`` with a plain name;
- it imports nothing but the standard library, so it can run from a file path with any
  Python 3, and it exits right after answering: no long-lived privileged process.

Protocol: one JSON object out on stdout. ``start`` reads ``{"cmd", "env", "log", "grace"}``
as JSON on stdin (the environment holds the server's API token; stdin keeps it out of
``ps`` and out of sudo's log).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "KILL": signal.SIGKILL}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def log_path(name: str) -> Path:
    if not _NAME.match(name) or name.startswith("."):
        raise SystemExit(f"sudo_helper: bad log name {name!r}")
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".amalthea" / "logs" / f"{name}.log"


def start_time(pid: int) -> int | None:
    """Process start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only nobody reaped it yet
        return None
    return int(fields[19])


def tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def cmd_start(spec: dict[str, Any]) -> dict[str, Any]:
    me = pwd.getpwuid(os.getuid())
    env = {"HOME": me.pw_dir, "USER": me.pw_name, "LOGNAME": me.pw_name, "SHELL": me.pw_shell,
           "PATH": "/usr/local/bin:/usr/bin:/bin"}  # fmt: skip
    env.update({str(k): str(v) for k, v in spec.get("env", {}).items()})
    log = log_path(str(spec["log"]))
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log, "ab", buffering=0) as out:
        out.write(f"--- starting {spec['cmd'][0]} at {time.ctime()}\n".encode())
        proc = subprocess.Popen(
            [str(a) for a in spec["cmd"]],
            env=env,
            cwd=spec.get("cwd") or me.pw_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # detached: survives this helper and the hub
        )
    # a server that dies at once (bad command, import error) is reported with its output now,
    # rather than as a timeout later
    try:
        code = proc.wait(float(spec.get("grace", 0.5)))
    except subprocess.TimeoutExpired:
        return {"pid": proc.pid, "start_time": start_time(proc.pid)}
    return {"pid": proc.pid, "exit": code, "log_tail": tail(log, 30)}


def alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


def main(argv: list[str]) -> int:
    if os.geteuid() == 0:
        print(json.dumps({"error": "sudo_helper refuses to run as root"}))
        return 2
    if len(argv) < 1:
        print(json.dumps({"error": "usage: start | poll PID START | signal PID START SIG | logs NAME N"}))  # fmt: skip
        return 2
    action, args = argv[0], argv[1:]
    if action == "start":
        result: dict[str, Any] = cmd_start(json.load(sys.stdin))
    elif action == "poll" and len(args) == 2:
        result = {"alive": alive(int(args[0]), int(args[1]))}
    elif action == "signal" and len(args) == 3 and args[2] in SIGNALS:
        pid, started = int(args[0]), int(args[1])
        sent = alive(pid, started)
        if sent:
            try:
                os.killpg(pid, SIGNALS[args[2]])  # the server leads its own session/group
            except ProcessLookupError:
                sent = False
        result = {"sent": sent}
    elif action == "logs" and len(args) == 2:
        result = {"lines": tail(log_path(args[0]), max(1, min(int(args[1]), 10000)))}
    else:
        print(json.dumps({"error": f"bad request {argv!r}"}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
