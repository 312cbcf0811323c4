"""Install JupyterHub 6.1.1 and configurable-http-proxy 5 into a cache dir, once.

JupyterHub must not share a venv with Amalthea (it would pin our dependencies), so it gets
its own venv under ``$AMALTHEA_TEST_CACHE`` (default ``~/.cache/amalthea-test``). A file lock
makes parallel test workers install only once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

JUPYTERHUB_VERSION = "6.1.1"
CHP_SPEC = "configurable-http-proxy@5"
#: what a typical single-user image holds next to jupyterhub (JupyterLab brings jupyter_server)
SINGLEUSER_EXTRAS = ("jupyterlab>=4.2,<5", "ipykernel")


def cache_dir() -> Path:
    root = Path(os.environ.get("AMALTHEA_TEST_CACHE", Path.home() / ".cache" / "amalthea-test"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import jupyterhub; print(jupyterhub.__version__)"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_jupyterhub() -> tuple[Path, Path]:
    """Return (jupyterhub executable, configurable-http-proxy executable)."""
    root = cache_dir()
    venv = root / "jh-venv"
    chp_dir = root / "chp"
    chp = chp_dir / "node_modules" / ".bin" / "configurable-http-proxy"
    with (root / "install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(venv / "bin" / "python") != JUPYTERHUB_VERSION:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", f"jupyterhub=={JUPYTERHUB_VERSION}"],
                check=True,
            )
        if not chp.exists():
            if shutil.which("npm") is None:
                raise RuntimeError("npm is needed to install configurable-http-proxy (apt: npm)")
            chp_dir.mkdir(exist_ok=True)
            subprocess.run(
                ["npm", "install", "--silent", "--no-audit", "--no-fund", CHP_SPEC],
                cwd=chp_dir,
                check=True,
            )
    return venv / "bin" / "jupyterhub", chp


def ensure_jupyterhub_singleuser() -> Path:
    """Return ``jupyterhub-singleuser`` from a venv with jupyterhub 6.1.1, JupyterLab, ipykernel.

    A venv of its own (not the hub's ``jh-venv``): the PyPI single-user server needs
    jupyter_server and a kernel, which JupyterHub itself does not depend on.
    """
    root = cache_dir()
    venv = root / "jh-singleuser-venv"
    marker = venv / ".amalthea-complete"
    with (root / "install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(venv / "bin" / "python") != JUPYTERHUB_VERSION or not marker.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            _share_our_packages(venv)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q",
                 f"jupyterhub=={JUPYTERHUB_VERSION}", *SINGLEUSER_EXTRAS],
                check=True,
            )  # fmt: skip
            marker.touch()
    return venv / "bin" / "jupyterhub-singleuser"


def _share_our_packages(venv: Path) -> None:
    """Let the venv see our venv's packages *after* its own (a .pth file).

    JupyterLab, jupyter_server and ipykernel are already installed next to Amalthea; pip
    counts what a .pth makes importable as installed, so only jupyterhub and the few packages
    it adds land in this venv (seconds instead of minutes in CI). Anything jupyterhub pins
    differently is installed into this venv and shadows ours here only.
    """
    ours = sysconfig.get_paths()["purelib"]
    theirs = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(theirs) / "zz_amalthea_shared.pth").write_text(ours + "\n")
    # Jupyter finds server-extension switches and JupyterLab's assets under sys.prefix
    # (etc/jupyter, share/jupyter), which a .pth does not carry over: link them.
    for sub in ("etc/jupyter", "share/jupyter"):
        source = Path(sys.prefix) / sub
        if source.is_dir():
            (venv / sub).parent.mkdir(parents=True, exist_ok=True)
            (venv / sub).symlink_to(source, target_is_directory=True)
