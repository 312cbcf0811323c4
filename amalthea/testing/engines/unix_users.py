"""Throw-away Unix users for tests that spawn as other users (sudo, Slurm, PAM).

Names are random (``amt`` + 8 hex digits) so parallel sessions and leftovers from a crashed
run never collide; :func:`remove_user` deletes the account, and its home.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass

from amalthea.testing.engines.apt import EngineUnavailable


@dataclass(frozen=True)
class UnixUser:
    name: str
    uid: int
    gid: int
    home: str


def create_user(prefix: str = "amt", groups: tuple[str, ...] = ()) -> UnixUser:
    """A new user with a 0700 home directory (so other users cannot read it)."""
    if os.geteuid() != 0:
        raise EngineUnavailable("creating test users needs root")
    name = f"{prefix}{secrets.token_hex(4)}"
    cmd = ["useradd", "-m", "-s", "/bin/bash", "-K", "HOME_MODE=0700"]
    if groups:
        cmd += ["-G", ",".join(groups)]
    subprocess.run([*cmd, name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    os.chmod(entry.pw_dir, 0o700)  # older useradd ignores HOME_MODE
    return UnixUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def create_group(prefix: str = "amtg") -> str:
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["groupadd", name], check=True, capture_output=True)
    return name


def remove_group(name: str) -> None:
    subprocess.run(["groupdel", name], check=False, capture_output=True)


def remove_user(user: UnixUser) -> None:
    # tests stop the user's servers themselves; -f removes the account regardless
    subprocess.run(["userdel", "-r", "-f", user.name], check=False, capture_output=True)
