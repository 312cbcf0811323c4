"""Talking to the Docker daemon: connecting, translating failures, pulling images.

Every failure that is the daemon's (unreachable socket, missing image, refused create) becomes
a SpawnError with ``layer="container engine"`` and a message that names the socket or image
and says what to do about it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiodocker
import aiohttp

from amalthea.spawners.base import ProgressEvent, SpawnError

ENGINE = "container engine"
DEFAULT_HOST = "unix:///var/run/docker.sock"
_NO_CONNECTION = 900  # the status aiodocker gives a DockerError when it cannot connect


def default_docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


@contextlib.asynccontextmanager
async def connect(host: str) -> AsyncIterator[aiodocker.Docker]:
    """A client for one operation; daemon-unreachable errors become a helpful SpawnError."""
    try:
        docker = aiodocker.Docker(url=host)
    except ValueError as e:
        raise SpawnError(f"Docker host {host!r} is not a valid address: {e}", layer=ENGINE) from e
    try:
        yield docker
    except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionError) as e:
        raise unreachable(host, e) from e
    except aiodocker.DockerError as e:
        if e.status == _NO_CONNECTION:
            raise unreachable(host, e.message) from e
        raise
    finally:
        await docker.close()


def unreachable(host: str, error: object) -> SpawnError:
    where = host.removeprefix("unix://")
    hint = (
        f"Is dockerd running, and may the hub's user use {where}? Start the daemon "
        "(e.g. `systemctl start docker`), add the hub's user to the `docker` group, or point "
        "c.DockerSpawner.docker_host (or DOCKER_HOST) at the right socket."
    )
    return SpawnError(f"Cannot reach the Docker daemon at {host}: {error}. {hint}", layer=ENGINE)


def engine_error(host: str, action: str, error: aiodocker.DockerError) -> SpawnError:
    if error.status == _NO_CONNECTION:
        return unreachable(host, error.message)
    return SpawnError(f"Docker could not {action}: {error.message}", layer=ENGINE)


async def image_present(docker: aiodocker.Docker, host: str, image: str) -> bool:
    try:
        await docker.images.inspect(image)
    except aiodocker.DockerError as e:
        if e.status == 404:
            return False
        raise engine_error(host, f"inspect image {image!r}", e) from e
    return True


async def ensure_image(
    docker: aiodocker.Docker,
    host: str,
    image: str,
    policy: str,
    report: Callable[[ProgressEvent], None],
) -> None:
    """Apply the pull policy ("always", "ifnotpresent", "never"), reporting pull progress."""
    if policy == "never" or (policy == "ifnotpresent" and await image_present(docker, host, image)):
        if policy == "never" and not await image_present(docker, host, image):
            raise SpawnError(
                f"The image {image!r} is not on the Docker host and c.DockerSpawner.pull_policy "
                "is 'never'. Build or load it there (see docs/spawners/docker.md), or set "
                "pull_policy to 'ifnotpresent'.",
                layer=ENGINE,
            )
        return
    report(ProgressEvent(10, f"Pulling image {image}"))
    layers: dict[str, tuple[int, int]] = {}
    last = 10
    try:
        async for item in docker.images.pull(image, stream=True):
            if "error" in item:
                raise SpawnError(f"Pulling {image!r} failed: {item['error']}", layer=ENGINE)
            percent = _pull_percent(item, layers)
            if percent is not None and percent >= last + 5:
                last = percent
                report(ProgressEvent(percent, f"Pulling image {image}: {percent - 10}%"))
    except aiodocker.DockerError as e:
        if e.status == _NO_CONNECTION:
            raise unreachable(host, e.message) from e
        raise SpawnError(
            f"Pulling the image {image!r} failed: {e.message}. Check the image name and that the "
            "Docker host can reach its registry, or build the image locally and set "
            "c.DockerSpawner.pull_policy = 'never'.",
            layer=ENGINE,
        ) from e
    report(ProgressEvent(60, f"Pulled image {image}"))


def _pull_percent(item: dict[str, Any], layers: dict[str, tuple[int, int]]) -> int | None:
    """Map the daemon's per-layer download counters to 10-60 on the progress bar."""
    detail = item.get("progressDetail") or {}
    if item.get("id") and detail.get("total"):
        layers[item["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
    if not layers:
        return None
    done = sum(c for c, _ in layers.values())
    total = sum(t for _, t in layers.values())
    return 10 + int(50 * done / total)
