"""The jupyter_server extension that makes a Jupyter server a hub's single-user server.

Lifecycle (jupyter_server's phases):

- config: as the *starter* extension, :meth:`HubExtension._jupyter_server_config` turns the
  hub's environment into ServerApp settings. jupyter_server applies starter config after
  config files and the command line, so the hub's port, prefix and auth always win — a
  stray ``c.ServerApp.port`` in a user's config would otherwise make the server unreachable.
- initialize: check in with the hub (blocking, with backoff; exit if it never answers), add
  the version/CSP headers and JupyterLab's hub page config, and set TCP_NODELAY on kernel
  websockets (see nodelay.py: about 40 ms of every kernel round trip otherwise), and make
  kernel specs that run our own Python start the fast kernel (kernelspec.py, kernel/).
- start: run the activity reporter and, if asked, tell the hub where we listen.
- stop: cancel those tasks.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Float, Integer

from amalthea import JUPYTERHUB_COMPAT_VERSION

from .activity import ActivityReporter, server_last_activity
from .hubclient import HubError, HubUnavailable, check_in
from .hubenv import HubEnvironment, read_hub_environment
from .identity import HubAuthorizer, HubContext, HubIdentityProvider
from .kernelspec import enable_fast_kernel
from .kerneltransport import enable_kernel_ipc
from .kernelwatch import enable_lean_activity
from .nodelay import SETTING as CONNECTION_CLASS
from .nodelay import enable_kernel_nodelay
from .relay import with_fast_relay

__all__ = ["HubExtension"]

PageConfigHook = Callable[[Any, dict[str, Any]], dict[str, Any]]


def server_config(env: HubEnvironment) -> dict[str, Any]:
    """ServerApp settings implied by the hub's environment."""
    config: dict[str, Any] = {
        "ip": env.ip,
        "port": env.port,
        # The hub waits on exactly this port; silently moving elsewhere would hang the spawn.
        "port_retries": 0,
        "base_url": env.service_prefix,
        "default_url": env.default_url,
        "open_browser": False,
        # Behind the proxy the Host header is the public one; auth is the hub's job.
        "allow_remote_access": True,
        "trust_xheaders": True,
        "quit_button": False,
        "identity_provider_class": HubIdentityProvider,
        "authorizer_class": HubAuthorizer,
    }
    if env.sock:
        # jupyter_server refuses --port together with --sock.
        for key in ("ip", "port", "port_retries"):
            del config[key]
        config["sock"] = env.sock
    if env.debug:
        config["log_level"] = "DEBUG"
    if env.root_dir:
        config["root_dir"] = env.root_dir
        # ServerApp computed preferred_dir from the old root_dir (the cwd) before starter
        # config applies; left alone it would point outside the new root and abort startup.
        config["preferred_dir"] = env.root_dir
    return config


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


class HubExtension(ExtensionApp):
    """Authenticate with the hub, report activity, give JupyterLab the hub's links."""

    name = "amalthea_singleuser"
    description = "Run a Jupyter server as a JupyterHub/Amalthea single-user server"
    load_other_extensions = True

    hub_connect_attempts = Integer(
        6, help="How often to try reaching the hub at startup before giving up."
    ).tag(config=True)
    hub_connect_max_delay = Float(
        16.0, help="Longest wait between startup attempts; waits double from 2 s up to this."
    ).tag(config=True)
    kernel_tcp_nodelay = Bool(
        True,
        help="Set TCP_NODELAY on kernel websockets. Off, Nagle's algorithm and delayed ACKs "
        "add about 40 ms to every execution's round trip; turn off only to measure that.",
    ).tag(config=True)
    fast_relay = Bool(
        True,
        help="Relay kernel messages to legacy (JSON text) kernel websockets by splicing the "
        "kernel's JSON frames after checking their signature, instead of decoding and "
        "re-encoding each one (most of the server's CPU per execution). Off, jupyter_server "
        "relays them itself.",
    ).tag(config=True)
    fast_kernel = Bool(
        True,
        help="Start kernel specs that run this server's Python with ipykernel_launcher "
        "(the default python3 kernel) as amalthea.singleuser.kernel: ipykernel whose messages "
        "are sent by the thread that makes them instead of being handed to its IOPub thread, "
        "which saves milliseconds on every execution. Off, kernels start exactly as their "
        "spec says.",
    ).tag(config=True)

    lean_activity = Bool(
        True,
        help="Track kernels' execution state and last activity by reading their IOPub "
        "directly and parsing only message headers (kernelwatch.py), instead of "
        "jupyter_server's watcher, which fully decodes every IOPub message a second time. "
        "Same rules, same attributes; off, jupyter_server's watcher runs.",
    ).tag(config=True)

    kernel_ipc = Bool(
        True,
        help="Connect to fast kernels (see fast_kernel) over Unix sockets (ZMQ ipc) in the "
        "user's runtime directory instead of loopback TCP, which is faster per message. "
        "Kernels with a configured KernelManager.transport or ip keep it. Off, TCP.",
    ).tag(config=True)

    @property
    def hub_connect_delays(self) -> list[float]:
        return [
            min(2.0 ** (i + 1), self.hub_connect_max_delay)
            for i in range(max(self.hub_connect_attempts - 1, 0))
        ]

    _tasks: set[asyncio.Task[None]]

    @classmethod
    def get_extension_package(cls) -> str:
        # The default (the top-level package, "amalthea") would look for the extension
        # entry point in the hub's package.
        return "amalthea.singleuser"

    def _jupyter_server_config(self) -> dict[str, Any]:
        return {"ServerApp": server_config(read_hub_environment())}

    @property
    def server(self) -> ServerApp:
        if self.serverapp is None:
            raise RuntimeError("HubExtension used before jupyter_server linked it")
        return self.serverapp

    @property
    def hub(self) -> HubContext:
        provider = self.server.identity_provider
        if not isinstance(provider, HubIdentityProvider):
            raise TypeError(
                f"ServerApp.identity_provider_class is {type(provider).__name__}; "
                "amalthea-singleuser needs HubIdentityProvider (do not override it in config)"
            )
        return provider.hub

    def initialize_settings(self) -> None:
        self._tasks = set()
        env = self.hub.env
        self._check_in(env)
        settings = self.server.web_app.settings
        headers = settings.setdefault("headers", {})
        headers["X-JupyterHub-Version"] = JUPYTERHUB_COMPAT_VERSION
        headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        # Keys are (re)placed in self.settings, not web_app.settings: jupyter_server copies
        # web_app.settings into self.settings before this method and writes the copy back after
        # it, so replacing an existing key of web_app.settings here would silently be undone.
        # (The headers dict above is mutated in place, which both copies share.)
        self.settings["page_config_hook"] = self._page_config_hook(
            env, self.settings.get("page_config_hook") or settings.get("page_config_hook")
        )
        if self.kernel_tcp_nodelay and not enable_kernel_nodelay(self.settings):
            self.log.warning(
                "No kernel_websocket_connection_class; kernel websockets keep Nagle on"
            )
        if self.fast_relay and self.settings.get(CONNECTION_CLASS) is not None:
            self.settings[CONNECTION_CLASS] = with_fast_relay(self.settings[CONNECTION_CLASS])
        if self.fast_kernel:
            self._enable_fast_kernel()
        if self.lean_activity and not self.server.gateway_config.gateway_enabled:
            if not enable_lean_activity(self.server.kernel_manager):
                self.log.warning("Kernel manager does not watch activity; lean_activity off")

    def _enable_fast_kernel(self) -> None:
        if self.server.gateway_config.gateway_enabled:
            return  # kernels run on the gateway's machine, which may not have amalthea
        if not enable_fast_kernel(self.server.kernel_spec_manager):
            self.log.warning("Kernel spec manager has no kernel_spec_class; fast kernel off")
        elif self.kernel_ipc and not enable_kernel_ipc(self.server.kernel_manager):
            self.log.info("Kernel manager has no kernel_manager_factory; kernels use TCP")

    def _check_in(self, env: HubEnvironment) -> None:
        try:
            version = check_in(env.api_url, self.hub_connect_delays, self.log)
        except HubUnavailable as exc:
            self.log.critical("%s", exc)
            raise SystemExit(1) from exc
        if version is None:
            self.log.warning("The hub at %s sent no X-JupyterHub-Version header", env.api_url)
        elif _major_minor(version) != _major_minor(JUPYTERHUB_COMPAT_VERSION):
            self.log.warning(
                "Hub speaks JupyterHub %s, this server was built against %s; "
                "minor protocol differences are possible",
                version,
                JUPYTERHUB_COMPAT_VERSION,
            )
        else:
            self.log.info("Checked in with the hub at %s (JupyterHub %s)", env.api_url, version)

    @staticmethod
    def _page_config_hook(env: HubEnvironment, chained: PageConfigHook | None) -> PageConfigHook:
        def hook(handler: Any, page_config: dict[str, Any]) -> dict[str, Any]:
            if chained is not None:
                page_config = chained(handler, page_config)
            user = handler.current_user
            page_config.update(
                {
                    "hubUser": user.username if user else "",
                    "hubServerUser": env.user,
                    "hubPrefix": env.hub_prefix,
                    "hubHost": env.hub_host,
                    "shareUrl": env.hub_prefix + "user-redirect",
                    "hubServerName": env.server_name,
                    # Only a token the page already came with; never the HttpOnly cookie's.
                    "token": getattr(handler, "_amalthea_token", ""),
                }
            )
            return page_config

        return hook

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        env = self.hub.env
        reporter = ActivityReporter(
            self.hub.client,
            activity_url=env.activity_url,
            server_name=env.server_name,
            interval=env.activity_interval,
            last_activity=lambda: server_last_activity(
                serverapp.web_app.settings, serverapp.web_app.last_activity
            ),
        )
        self._spawn(reporter.run())
        if env.report_url and not env.sock:
            self._spawn(self._report_location(env, serverapp))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # Owned: kept in self._tasks and cancelled/awaited by stop_extension.
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report_location(self, env: HubEnvironment, serverapp: Any) -> None:
        """POST where we listen, for spawners that cannot know it in advance (batch jobs)."""
        ip = serverapp.ip
        if ip in ("", "0.0.0.0", "::", "*"):
            ip = socket.gethostname()
        for delay in (1, 2, 4, 8, 0):
            try:
                await self.hub.client.post_json(env.report_url, {"ip": ip, "port": serverapp.port})
                self.log.info("Reported %s:%s to %s", ip, serverapp.port, env.report_url)
                return
            except HubError as exc:
                self.log.warning("Reporting our address to %s failed: %s", env.report_url, exc)
                await asyncio.sleep(delay)

    async def stop_extension(self) -> None:
        tasks = list(getattr(self, "_tasks", ()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
