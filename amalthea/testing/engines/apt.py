"""Install missing Debian packages for a test engine, once, with apt's own client."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CACHE_DIR = Path(os.environ.get("AMALTHEA_TEST_CACHE", "~/.cache/amalthea-test")).expanduser()


class EngineUnavailable(RuntimeError):
    """The engine cannot run here; the message says what is missing and how to get it."""


def ensure_commands(commands: dict[str, str]) -> None:
    """Make sure each command exists, installing ``{command: debian_package}`` if missing.

    Several test sessions may share the machine, so apt waits for the dpkg lock instead of
    failing at once when another one is installing.
    """
    missing = sorted({pkg for cmd, pkg in commands.items() if not _has_command(cmd)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineUnavailable(
            f"needs the Debian packages {', '.join(missing)}; install them as root "
            f"(apt-get install --no-install-recommends {' '.join(missing)})"
        )
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*apt, "install", "--no-install-recommends", *missing]
    done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # package lists may be stale or absent on a fresh machine
        subprocess.run([*apt, "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EngineUnavailable(
            f"apt-get install {' '.join(missing)} failed:\n{done.stdout[-2000:]}{done.stderr}"
        )


def _has_command(name: str) -> bool:
    # /usr/sbin is not always on PATH for non-login shells, and dockerd lives there.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path) is not None
