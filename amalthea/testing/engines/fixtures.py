"""pytest fixtures for the Docker and systemd engines (import them into a conftest.py).

    from amalthea.testing.engines.fixtures import docker_engine, singleuser_image  # noqa: F401

All are session-scoped: one private dockerd per test session, images built once and cached
on disk between sessions (see :mod:`amalthea.testing.engines.dockerd`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from amalthea.testing.engines.apt import EngineUnavailable
from amalthea.testing.engines.dockerd import (
    REPO_ROOT,
    DockerEngine,
    build_singleuser_image,
    ensure_base_image,
    ensure_systemd_image,
    running_dockerd,
)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd for this session (skips with the reason if it cannot run here)."""
    try:
        with running_dockerd() as engine:
            yield engine
    except EngineUnavailable as e:
        pytest.skip(f"Docker engine unavailable: {e}")


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    """Debian bookworm minbase + python3 (no Jupyter): fast containers for plain processes."""
    return ensure_base_image(docker_engine)


@pytest.fixture(scope="session")
def singleuser_image(docker_engine: DockerEngine) -> str:
    """docker/singleuser/Dockerfile built from this checkout (JupyterLab, ipykernel, amalthea)."""
    return build_singleuser_image(docker_engine)


@dataclass
class SystemdContainer:
    """A container running systemd as PID 1 on the host network, with this checkout at /src."""

    engine: DockerEngine
    name: str

    def exec(self, *cmd: str, check: bool = True, timeout: float = 120) -> str:
        return self.engine.cli("exec", self.name, *cmd, check=check, timeout=timeout)


@pytest.fixture(scope="session")
def systemd_container(docker_engine: DockerEngine) -> Iterator[SystemdContainer]:
    image = ensure_systemd_image(docker_engine)
    name = f"amalthea-systemd-{uuid.uuid4().hex[:8]}"
    # The recipe from engines.md: private cgroup namespace on a tmpfs, never the host's
    # /sys/fs/cgroup (systemd would remount the host's cgroup tree read-only).
    docker_engine.cli(
        "run", "-d", "--name", name, "--stop-signal", "SIGRTMIN+3",
        "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
        "--cgroupns=private", "--tmpfs", "/sys/fs/cgroup", "--tmpfs", "/run",
        "--tmpfs", "/run/lock", "--tmpfs", "/tmp", "--network", "host",  # noqa: S108
        "-e", "container=docker", "-v", f"{REPO_ROOT}:/src:ro",
        image, "/sbin/init",
    )  # fmt: skip
    box = SystemdContainer(docker_engine, name)
    try:
        _wait_running(box)
        yield box
    finally:
        docker_engine.cli("rm", "-f", name, check=False)


def _wait_running(box: SystemdContainer) -> None:
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        state = box.exec("systemctl", "is-system-running", check=False).strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"systemd in {box.name} did not finish booting (state {state!r})")
