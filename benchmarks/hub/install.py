"""Install the three things the benchmark compares, each in its own place under .work/.

- ``venv-jupyterhub``: jupyterhub==6.1.1 with jupyterlab, jupyter_server and ipykernel (the
  single-user servers it spawns come from this venv too);
- ``chp``: configurable-http-proxy@5 from npm;
- ``venv-amalthea``: this repository, ``pip install -e`` (so the run measures the working tree);
- ``venv-harness``: the load generator's own deps (aiohttp, websockets), so neither hub's
  venv is touched by the client.

Stdlib only: this runs before any venv exists. Each step is skipped when already done.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
REPO = HERE.parent.parent
JUPYTERHUB_VERSION = "6.1.1"


def _python_ok(python: Path, check: str) -> bool:
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


def _venv(path: Path, check: str, packages: list[str]) -> Path:
    python = path / "bin" / "python"
    if _python_ok(python, check):
        return python
    print(f"installing {' '.join(packages)} into {path.relative_to(HERE)} ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    if not _python_ok(python, check):
        sys.exit(f"{path}: installed {packages} but `{check}` still fails")
    return python


def jupyterhub() -> Path:
    check = (f"import jupyterhub, jupyterlab, ipykernel; "
             f"assert jupyterhub.__version__ == {JUPYTERHUB_VERSION!r}")  # fmt: skip
    return _venv(WORK / "venv-jupyterhub", check,
                 [f"jupyterhub=={JUPYTERHUB_VERSION}", "jupyterlab", "jupyter_server", "ipykernel"])  # fmt: skip


def chp() -> Path:
    exe = WORK / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    if exe.exists():
        return exe
    if shutil.which("npm") is None:
        sys.exit("npm is needed to install configurable-http-proxy (apt-get install npm)")
    print("installing configurable-http-proxy@5 with npm ...", flush=True)
    (WORK / "chp").mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund",
                    "configurable-http-proxy@5"], cwd=WORK / "chp", check=True)  # fmt: skip
    return exe


def amalthea() -> Path:
    venv = WORK / "venv-amalthea"
    # an editable install points at the repo, so "installed once" stays current
    check = f"import amalthea, ipykernel; assert amalthea.__file__.startswith({str(REPO)!r})"
    python = _venv(venv, check, ["-e", str(REPO)])
    # A wheel install compiles every module once; an editable one leaves that to the first
    # import, which skips writing .pyc when PYTHONDONTWRITEBYTECODE is set (our shells set it),
    # so every hub start would recompile each file edited since. Compile what changed now.
    subprocess.run([str(python), "-m", "compileall", "-q", str(REPO / "amalthea")], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return python


def harness() -> Path:
    return _venv(WORK / "venv-harness", "import aiohttp, websockets", ["aiohttp", "websockets"])


def versions(python: Path, modules: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")  # fmt: skip
    out = subprocess.run([str(python), "-c", code, *modules], capture_output=True, text=True)
    import json

    return json.loads(out.stdout) if out.returncode == 0 else {}
