"""A private Docker daemon for tests, and images built without any registry.

Theory:

- ``running_dockerd()`` starts Debian's ``dockerd`` with its own socket, exec-root, pidfile
  and bridge, and ``--iptables=false`` so the host's netfilter rules stay untouched
  (stock dockerd adds NAT chains and sets FORWARD to DROP, which breaks other tests).
  Published ports on 127.0.0.1 still work through docker-proxy.
- A *slot* (0-7) is claimed with an flock; each slot has its own persistent data-root under
  the cache dir, so images and layer caches survive between runs while two test sessions
  (or xdist workers) never share a daemon.
- Root filesystems come from ``mmdebstrap`` (apt's own mirror, no image registry) and are
  cached as tarballs; ``docker import`` turns them into base images.
- The single-user image is ``docker/singleuser/Dockerfile`` built on that base, with wheels
  made on the host by pip (the host's package index is not reachable from containers).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from amalthea.testing.engines.apt import CACHE_DIR, EngineUnavailable, ensure_commands

DOCKER_CACHE = CACHE_DIR / "docker"
BASE_IMAGE = "amalthea-test/base:bookworm"
SINGLEUSER_IMAGE = "amalthea-test/singleuser:latest"
SYSTEMD_IMAGE = "amalthea-test/systemd:bookworm"
BASE_PACKAGES = ["python3", "python3-venv"]
SYSTEMD_PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-traitlets", "procps"]
REPO_ROOT = Path(__file__).resolve().parents[3]
IMAGE_PYTHON = "3.11.2"  # python3 in Debian bookworm, what the base image runs
_SLOTS = 8


@dataclass
class DockerEngine:
    """A running private dockerd."""

    host: str  # unix:///.../docker.sock, for DOCKER_HOST / aiodocker.Docker(url=...)
    gateway_ip: str  # the host's address on the daemon's bridge, reachable from containers
    pid: int
    slot: int

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        """Run the docker CLI against this daemon and return its stdout."""
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}
        done = subprocess.run(
            [_docker_cli(), *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.strip()[-3000:]}")
        return done.stdout

    def has_image(self, tag: str) -> bool:
        return bool(self.cli("images", "-q", tag).strip())


@contextlib.contextmanager
def running_dockerd() -> Iterator[DockerEngine]:
    """Start a private dockerd (installing docker.io if needed); stop it and its containers after."""
    ensure_commands({"dockerd": "docker.io", "docker": "docker.io", "ip": "iproute2"})
    if os.geteuid() != 0:
        raise EngineUnavailable("dockerd needs root here (rootless Docker is not set up)")
    with _claim_slot() as slot:
        engine, process = _start(slot)
        try:
            yield engine
        finally:
            with contextlib.suppress(Exception):
                ids = engine.cli("ps", "-aq").split()
                if ids:
                    engine.cli("rm", "-f", "-v", *ids)
                engine.cli("volume", "prune", "-f")
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def _claim_slot() -> Iterator[int]:
    DOCKER_CACHE.mkdir(parents=True, exist_ok=True)
    for slot in range(_SLOTS):
        lock = (DOCKER_CACHE / f"slot{slot}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield slot
        finally:
            lock.close()
        return
    raise EngineUnavailable(f"all {_SLOTS} private dockerd slots under {DOCKER_CACHE} are in use")


def _start(slot: int) -> tuple[DockerEngine, subprocess.Popen[bytes]]:
    state = DOCKER_CACHE / f"slot{slot}"
    state.mkdir(parents=True, exist_ok=True)
    # exec-root holds containerd's socket, whose path must stay under ~100 bytes.
    exec_root = Path(f"/run/amalthea-dockerd{slot}")
    sock = exec_root.with_name(f"amalthea-dockerd{slot}.sock")
    pidfile = state / "dockerd.pid"
    _reap_stale(pidfile)
    bridge, gateway = f"amtbr{slot}", f"172.30.{100 + slot}.1"
    _ensure_bridge(bridge, gateway)
    log = (state / "dockerd.log").open("ab")
    cmd = [
        shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin") or "dockerd",
        "--iptables=false",
        "--ip-masq=false",
        f"--bridge={bridge}",
        f"--data-root={state / 'data'}",
        f"--exec-root={exec_root}",
        f"--pidfile={pidfile}",
        f"--host=unix://{sock}",
    ]
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _ping(sock):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = (state / "dockerd.log").read_text(errors="replace")[-3000:]
            raise EngineUnavailable(f"dockerd did not come up; its log ends:\n{tail}")
        time.sleep(0.1)
    return DockerEngine(f"unix://{sock}", gateway, process.pid, slot), process


def _reap_stale(pidfile: Path) -> None:
    """A previous session of this slot was killed hard: stop the dockerd it left behind."""
    try:
        pid = int(pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"dockerd" in cmdline and str(pidfile).encode() in cmdline:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)


def _ensure_bridge(name: str, gateway: str) -> None:
    # Our own bridge instead of docker0, so a daemon started by someone else does not clash.
    if Path(f"/sys/class/net/{name}").exists():
        return
    for args in (
        ["link", "add", "name", name, "type", "bridge"],
        ["addr", "add", f"{gateway}/24", "dev", name],
        ["link", "set", name, "up"],
    ):
        subprocess.run(["ip", *args], check=True, capture_output=True)


def _ping(sock: Path) -> bool:
    conn = _UnixHTTPConnection(str(sock))
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=2)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2)
        self.sock.connect(self._path)


def _docker_cli() -> str:
    # Debian's client matches the daemon (20.10); newer clients also work but want buildx.
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


# ---- images ------------------------------------------------------------------------------


def apt_mirror() -> str:
    """The first Debian mirror apt itself uses here (mmdebstrap needs no other network)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        match = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def ensure_rootfs(name: str, packages: list[str]) -> Path:
    """A cached minbase bookworm rootfs tarball with ``packages``; built once (35-60 s)."""
    ensure_commands({"mmdebstrap": "mmdebstrap"})
    key = hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:10]
    tarball = DOCKER_CACHE / f"{name}-bookworm-{key}.tar"
    DOCKER_CACHE.mkdir(parents=True, exist_ok=True)
    with _file_lock(tarball.with_suffix(".lock")):
        if tarball.exists():
            return tarball
        part = tarball.with_suffix(".part")
        cmd = ["mmdebstrap", "--quiet", "--format=tar", "--variant=minbase"]
        cmd += [f"--include={','.join(packages)}", "bookworm", str(part), apt_mirror()]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            part.unlink(missing_ok=True)
            raise EngineUnavailable(f"mmdebstrap {name} failed:\n{done.stderr[-3000:]}")
        part.rename(tarball)
    return tarball


def ensure_base_image(engine: DockerEngine, tag: str = BASE_IMAGE) -> str:
    if not engine.has_image(tag):
        tarball = ensure_rootfs("base", BASE_PACKAGES)
        engine.cli("import", "-c", 'CMD ["python3"]', str(tarball), tag)
    return tag


def ensure_systemd_image(engine: DockerEngine, tag: str = SYSTEMD_IMAGE) -> str:
    if not engine.has_image(tag):
        tarball = ensure_rootfs("systemd", SYSTEMD_PACKAGES)
        engine.cli("import", "-c", 'CMD ["/sbin/init"]', str(tarball), tag)
    return tag


def build_singleuser_image(engine: DockerEngine, tag: str = SINGLEUSER_IMAGE) -> str:
    """docker/singleuser/Dockerfile on the base image, with wheels built on the host.

    The dependency layer is cached by dockerd (same wheels -> same layer); only the small
    layer installing this checkout's amalthea wheel is rebuilt when the code changes.
    """
    base = ensure_base_image(engine)
    deps = _runtime_requirements()
    source_key = _source_key(deps)
    label = '{{ index .Config.Labels "org.amalthea.test.source" }}'
    if engine.has_image(tag) and engine.cli("inspect", "-f", label, tag).strip() == source_key:
        return tag  # built from exactly this checkout already: skip the 30-40 s rebuild
    wheels = _wheelhouse(deps)
    with tempfile.TemporaryDirectory(prefix="image-", dir=DOCKER_CACHE) as tmp:
        ctx = Path(tmp) / "ctx"
        shutil.copytree(REPO_ROOT / "docker" / "singleuser", ctx)
        (ctx / "requirements.txt").write_text("\n".join(deps) + "\n")
        for whl in wheels.glob("*.whl"):
            os.link(whl, ctx / "deps" / whl.name)
        _build_amalthea_wheel(Path(tmp), ctx / "local")
        for path in ctx.rglob("*"):  # stable mtimes keep the COPY layer cache valid
            os.utime(path, (0, 0), follow_symlinks=False)
        engine.cli(
            "build", "-q", "-t", tag,
            "--build-arg", f"BASE_IMAGE={base}",
            "--build-arg", "PIP_ARGS=--no-index",
            "--label", f"org.amalthea.test.source={source_key}",
            str(ctx),
            timeout=900,
        )  # fmt: skip
    return tag


def _source_key(requirements: list[str]) -> str:
    """Hash of everything that goes into the image: the package, Dockerfile, requirements."""
    digest = hashlib.sha256("\n".join(requirements).encode())
    files = [
        REPO_ROOT / "pyproject.toml",
        *sorted((REPO_ROOT / "docker" / "singleuser").rglob("*")),
    ]
    files += sorted(p for p in (REPO_ROOT / "amalthea").rglob("*") if "__pycache__" not in p.parts)
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _runtime_requirements() -> list[str]:
    # From pyproject.toml, not the installed metadata: the image gets a wheel built from this
    # checkout, and an editable install's metadata goes stale when a dependency is added.
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return sorted(tomllib.load(f)["project"]["dependencies"])


def _wheelhouse(requirements: list[str]) -> Path:
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:10]
    wheels = DOCKER_CACHE / f"wheels-{key}"
    with _file_lock(wheels.with_suffix(".lock")):
        if (wheels / ".complete").exists():
            return wheels
        wheels.mkdir(parents=True, exist_ok=True)
        # Wheels for the image's Python (Debian's 3.11.2), which some releases exclude.
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
        cmd += [f"--python-version={IMAGE_PYTHON}", "-d", str(wheels), *requirements]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise EngineUnavailable(f"pip wheel for the single-user image failed:\n{done.stderr}")
        (wheels / ".complete").touch()
    return wheels


def _build_amalthea_wheel(tmp: Path, out: Path) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources,
    # and the shared checkout is not ours to litter.
    src = tmp / "src"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "node_modules", "__pycache__", "*.egg-info", ".*cache"
    )
    for entry in ("amalthea", "pyproject.toml", "README.md"):
        path = REPO_ROOT / entry
        if path.is_dir():
            shutil.copytree(path, src / entry, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, src / entry)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
    done = subprocess.run([*cmd, "-w", str(out), str(src)], capture_output=True, text=True)
    if done.returncode != 0:
        raise EngineUnavailable(f"building the amalthea wheel failed:\n{done.stderr}")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
