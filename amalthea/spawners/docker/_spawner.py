"""DockerSpawner: one container per server, home directory on a per-user volume.

Networking (how the proxy reaches the server, and the server the hub):

- ``network_name = "bridge"`` (default): the container listens on 0.0.0.0:``container_port``,
  published on ``publish_ip`` (127.0.0.1) at a random host port; the hub and proxy use that.
  Inside the container 127.0.0.1 is the container itself, so a loopback hub API URL is
  rewritten to ``hub_connect_url`` or, if unset, to the bridge's gateway address (the host as
  seen from containers). The hub must listen there too (e.g. ``hub_ip = "0.0.0.0"``).
- ``network_name = "host"``: the container shares the host's network; the server listens on
  127.0.0.1 at a free port picked here and the hub URL needs no rewriting. Simplest, but
  containers can see every host port.
- any other name: a user-defined network the hub is attached to as well; the server is
  reached at the container's address on it, port ``container_port``.

Containers are recreated on every start (the server's API token changes per spawn); the
named home volume is what persists.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiodocker
from traitlets import Bool, Dict, Enum, Float, Integer, Unicode

from amalthea.spawners.base import ProgressEvent, ServerAddress, Spawner, SpawnError
from amalthea.spawners.docker import _engine
from amalthea.spawners.docker._engine import ENGINE, connect, engine_error
from amalthea.spawners.naming import render

SERVER = "single-user server"
LABEL = "org.amalthea"


class DockerSpawner(Spawner):
    """Start each server in its own Docker container."""

    image = Unicode(
        "amalthea/singleuser:latest",
        help="Image of the single-user server (see docker/singleuser/Dockerfile).",
    ).tag(config=True)
    docker_host = Unicode(
        _engine.default_docker_host(),
        help="Docker Engine address, e.g. unix:///var/run/docker.sock or tcp://host:2375. "
        "Defaults to $DOCKER_HOST, else the standard socket.",
    ).tag(config=True)
    pull_policy = Enum(
        ["always", "ifnotpresent", "never"],
        "ifnotpresent",
        help="When to pull the image: always, ifnotpresent (default) or never.",
    ).tag(config=True)
    container_name_template = Unicode(
        "amalthea-{username}{server_suffix}",
        help="Container name; {username}, {servername}, {server_suffix} are made Docker-safe.",
    ).tag(config=True)
    volume_name_template = Unicode(
        "amalthea-home-{username}{server_suffix}",
        help="Named volume mounted at home_dir, one per user (and server). '' = no volume.",
    ).tag(config=True)
    bind_home_template = Unicode(
        "",
        help="Bind-mount this host directory at home_dir instead of a named volume, e.g. "
        "'/srv/homes/{username}'. The directory must exist and be writable by the image's user.",
    ).tag(config=True)
    home_dir = Unicode("/home/jovyan", help="Where the home volume is mounted.").tag(config=True)
    network_name = Unicode(
        "bridge",
        help="'bridge' (publish the port on publish_ip), 'host' (share the host's network) "
        "or a user-defined network the hub is also on.",
    ).tag(config=True)
    publish_ip = Unicode(
        "127.0.0.1", help="Host address the container port is published on (bridge network)."
    ).tag(config=True)
    container_port = Integer(8888, help="Port the server listens on inside the container.").tag(
        config=True
    )
    hub_connect_url = Unicode(
        "",
        help="Hub URL as reached from inside containers, e.g. http://172.17.0.1:8081. Empty: on "
        "the bridge network a loopback hub URL is pointed at the bridge gateway.",
    ).tag(config=True)
    user = Unicode("", help="User (name or uid[:gid]) to run as; '' = the image's USER.").tag(
        config=True
    )
    remove = Bool(True, help="Delete the container when the server stops.").tag(config=True)
    use_init = Bool(
        True,
        help="Run Docker's tiny init as PID 1 (docker run --init): it forwards SIGTERM to the "
        "server and reaps zombie processes left by kernels and terminals.",
    ).tag(config=True)
    stop_timeout = Float(10, help="Seconds between SIGTERM and SIGKILL on stop.").tag(config=True)
    extra_host_config = Dict(
        help="Merged into the Engine API's HostConfig, e.g. {'CapAdd': ['SYS_PTRACE']}."
    ).tag(config=True)
    extra_create_kwargs = Dict(help="Merged into the container create request.").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.container_id = ""
        self.address: ServerAddress | None = None
        self._events: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()

    @property
    def container_name(self) -> str:
        return render(self.container_name_template, self.context.username, self.context.server_name)

    @property
    def volume_name(self) -> str:
        return render(self.volume_name_template, self.context.username, self.context.server_name)

    # ---- contract ----------------------------------------------------------------------
    async def start(self) -> ServerAddress:
        while not self._events.empty():  # a sentinel left over from an earlier start
            self._events.get_nowait()
        try:
            return await self._start()
        finally:
            self._events.put_nowait(None)

    async def _start(self) -> ServerAddress:
        async with connect(self.docker_host) as docker:
            await _engine.ensure_image(
                docker, self.docker_host, self.image, self.pull_policy, self._events.put_nowait
            )
            await self._remove_leftover(docker)
            host_port = _free_port() if self.network_name == "host" else self.container_port
            config = await self._container_config(docker, host_port)
            self._events.put_nowait(ProgressEvent(70, f"Creating container {self.container_name}"))
            try:
                container = await docker.containers.create(config, name=self.container_name)
            except aiodocker.DockerError as e:
                raise engine_error(
                    self.docker_host, f"create container {self.container_name!r}", e
                ) from e
            self.container_id = container.id
            try:
                await container.start()
            except aiodocker.DockerError as e:
                # e.g. the command does not exist in the image: the runtime refuses to start
                raise SpawnError(
                    f"Container {self.container_name} did not start: {e.message}",
                    layer=SERVER if "exec" in e.message else ENGINE,
                    log_tail=await self.logs(self.log_lines),
                ) from e
            self._events.put_nowait(ProgressEvent(80, "Container started"))
            self.address = await self._address(container, host_port)
            self.log.info("Started container %s (%s) at %s", self.container_name,
                          self.container_id[:12], self.address.url)  # fmt: skip
            return self.address

    async def poll(self) -> int | None:
        if not self.container_id:
            return 0
        async with connect(self.docker_host) as docker:
            info = await self._inspect(docker)
        if info is None:
            return 0
        state = info["State"]
        if state.get("Running"):
            return None
        return int(state.get("ExitCode") or 0)

    async def stop(self, now: bool = False) -> None:
        if not self.container_id:
            return
        async with connect(self.docker_host) as docker:
            container = docker.containers.container(self.container_id)
            try:
                await container.stop(t=0 if now else int(self.stop_timeout))
                if self.remove:
                    await container.delete(force=True)
            except aiodocker.DockerError as e:
                if e.status != 404:  # already gone is what we wanted
                    raise engine_error(
                        self.docker_host, f"stop container {self.container_name!r}", e
                    ) from e
        if self.remove:
            self.container_id = ""

    async def progress(self) -> AsyncIterator[ProgressEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    def get_state(self) -> dict[str, Any]:
        if not self.container_id:
            return {}
        state: dict[str, Any] = {"container_id": self.container_id}
        if self.address:
            state.update(self.address.as_state())
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.container_id = state.get("container_id", "")
        self.address = ServerAddress.from_state(state) or self.address

    async def logs(self, lines: int = 50) -> list[str]:
        if not self.container_id:
            return []
        async with connect(self.docker_host) as docker:
            container = docker.containers.container(self.container_id)
            try:
                chunks = await container.log(stdout=True, stderr=True, tail=lines)
            except aiodocker.DockerError:
                return []
        # the daemon returns chunks that may hold several lines or end mid-line
        return "".join(chunks).splitlines()[-lines:]

    async def exit_error(self) -> SpawnError | None:
        """Why the container stopped, with its log tail; None while it runs.

        Names the OOM kill and the memory limit, because "exit 137" alone does not tell a
        user that their notebook needed more memory.
        """
        if not self.container_id:
            return None
        async with connect(self.docker_host) as docker:
            info = await self._inspect(docker)
        if info is None:
            return SpawnError(f"Container {self.container_name} no longer exists.", layer=ENGINE)
        state = info["State"]
        if state.get("Running"):
            return None
        code = state.get("ExitCode")
        if state.get("OOMKilled"):
            reason = f"was killed for using more than its memory limit ({self.mem_limit})"
        elif state.get("Error"):
            return SpawnError(
                f"Container {self.container_name} failed: {state['Error']}", layer=ENGINE
            )
        elif code in (126, 127):  # the shell/init convention for "cannot execute"/"not found"
            what = "was not found" if code == 127 else "is not executable"
            reason = (
                f"exited with code {code}: its command {self.command()[0]!r} {what} in {self.image}"
            )
        else:
            reason = f"exited with code {code}"
        return SpawnError(
            f"The server's container {self.container_name} {reason}.",
            layer=SERVER,
            log_tail=await self.logs(self.log_lines),
        )

    # ---- helpers -----------------------------------------------------------------------
    async def _inspect(self, docker: aiodocker.Docker) -> dict[str, Any] | None:
        try:
            return await docker.containers.container(self.container_id).show()
        except aiodocker.DockerError as e:
            if e.status == 404:
                return None
            raise engine_error(
                self.docker_host, f"inspect container {self.container_name!r}", e
            ) from e

    async def _remove_leftover(self, docker: aiodocker.Docker) -> None:
        """A container of the same name from an earlier spawn: its token is stale, drop it."""
        try:
            old = await docker.containers.get(self.container_name)
        except aiodocker.DockerError as e:
            if e.status == 404:
                return
            raise engine_error(
                self.docker_host, f"look up container {self.container_name!r}", e
            ) from e
        self.log.warning("Removing old container %s before starting", self.container_name)
        await old.delete(force=True)

    async def _container_config(self, docker: aiodocker.Docker, port: int) -> dict[str, Any]:
        listen = "127.0.0.1" if self.network_name == "host" else "0.0.0.0"
        env = self.build_env()
        env["JUPYTERHUB_SERVICE_URL"] = f"http://{listen}:{port}{self.context.url_prefix}"
        env = self.environment_overrides(env)
        await self._rewrite_hub_url(docker, env)
        host_config: dict[str, Any] = {
            "NetworkMode": self.network_name,
            "Mounts": self._mounts(),
            "Init": self.use_init,
            **self._limits(),
        }
        config: dict[str, Any] = {
            "Image": self.image,
            "Cmd": self.command(),
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": {
                f"{LABEL}.user": self.context.username,
                f"{LABEL}.server": self.context.server_name,
            },
            "HostConfig": host_config,
        }
        if self.network_name == "bridge":
            config["ExposedPorts"] = {f"{port}/tcp": {}}
            host_config["PortBindings"] = {f"{port}/tcp": [{"HostIp": self.publish_ip}]}
        if self.user:
            config["User"] = self.user
        host_config.update(self.extra_host_config)
        config.update(self.extra_create_kwargs)
        return config

    def environment_overrides(self, env: dict[str, str]) -> dict[str, str]:
        # build_env() applied `environment` before we set JUPYTERHUB_SERVICE_URL; an admin's
        # explicit value must still win.
        if "JUPYTERHUB_SERVICE_URL" in self.environment:
            value = self.environment["JUPYTERHUB_SERVICE_URL"]
            env["JUPYTERHUB_SERVICE_URL"] = str(value(self) if callable(value) else value)
        return env

    def _limits(self) -> dict[str, Any]:
        limits: dict[str, Any] = {}
        if self.mem_limit_bytes is not None:
            # Swap equal to memory = no swap: the limit means what it says.
            limits["Memory"] = limits["MemorySwap"] = self.mem_limit_bytes
        if self.cpu_limit_cores is not None:
            limits["NanoCpus"] = int(self.cpu_limit_cores * 1e9)
        if self.pids_limit:
            limits["PidsLimit"] = self.pids_limit
        return limits

    def _mounts(self) -> list[dict[str, Any]]:
        ctx = self.context
        if self.bind_home_template:
            source = render(self.bind_home_template, ctx.username, ctx.server_name)
            return [{"Type": "bind", "Source": source, "Target": self.home_dir}]
        if self.volume_name_template:
            return [{"Type": "volume", "Source": self.volume_name, "Target": self.home_dir}]
        return []

    async def _rewrite_hub_url(self, docker: aiodocker.Docker, env: dict[str, str]) -> None:
        """Point JUPYTERHUB_API_URL/ACTIVITY_URL at an address containers can reach."""
        api = env.get("JUPYTERHUB_API_URL", "")
        if not api or self.network_name == "host":
            return
        parts = urlsplit(api)
        if self.hub_connect_url:
            target = urlsplit(self.hub_connect_url)
            new_origin = f"{target.scheme}://{target.netloc}"
        elif parts.hostname in ("127.0.0.1", "localhost", "::1") and self.network_name == "bridge":
            gateway = await self._bridge_gateway(docker)
            new_origin = f"{parts.scheme}://{gateway}:{parts.port or 80}"
        else:
            return
        old_origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
            if env.get(key, "").startswith(old_origin):
                env[key] = new_origin + env[key][len(old_origin) :]

    async def _bridge_gateway(self, docker: aiodocker.Docker) -> str:
        try:
            network = await docker.networks.get("bridge")
            info = await network.show()
            return str(info["IPAM"]["Config"][0]["Gateway"])
        except (aiodocker.DockerError, KeyError, IndexError) as e:
            raise SpawnError(
                "Cannot find the Docker bridge's gateway address to point the server at the hub; "
                "set c.DockerSpawner.hub_connect_url to the hub's URL as seen from containers.",
                layer=ENGINE,
            ) from e

    async def _address(self, container: Any, port: int) -> ServerAddress:
        if self.network_name == "host":
            return ServerAddress("127.0.0.1", port)
        info = await container.show()
        networks = info["NetworkSettings"]
        if self.network_name == "bridge":
            bindings = (networks.get("Ports") or {}).get(f"{port}/tcp") or []
            if not bindings:
                # A container that exited at once loses its port binding: say why it exited.
                error = await self.exit_error()
                raise error or SpawnError(
                    f"Docker published no host port for container {self.container_name}.",
                    layer=ENGINE,
                )
            return ServerAddress(bindings[0]["HostIp"] or "127.0.0.1", int(bindings[0]["HostPort"]))
        ip = networks["Networks"][self.network_name]["IPAddress"]
        return ServerAddress(ip, port)


def _free_port() -> int:
    # Host network: the container shares our ports, so ask the kernel for one that is free now.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
