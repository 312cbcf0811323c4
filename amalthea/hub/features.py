"""Wiring of roles, services, spawn limits and the idle culler into a built hub.

``app.py`` (the composition root) calls three functions and nothing else of these features:
:func:`setup` after the hub is built (config validated, rows written, hooks installed),
:func:`start` once the proxy is up, :func:`stop` at shutdown. The parts are stored in
``hub.extras`` under "roles", "services", "admission", "culler" for handlers and pages.

Config: each feature owns its Configurable (``c.Roles``, ``c.SpawnLimits``, ``c.Culler``); the
JupyterHub-style names on the app (``c.Amalthea.load_roles``, ``services``,
``active_server_limit``, ``concurrent_spawn_limit``, ``named_server_limit_per_user``) are
honoured too and win when set.
"""

from __future__ import annotations

from typing import Any

from amalthea.hub.culler import Culler
from amalthea.hub.lifecycle.admission import Admission, SpawnLimits
from amalthea.hub.rbac.roles import Roles, apply_roles
from amalthea.hub.services import ServiceManager

__all__ = ["setup", "start", "stop"]


def _app_value(app: Any, name: str) -> Any:
    """A trait value from ``c.Amalthea`` if the user set it in config, else None."""
    section = app.config.get("Amalthea", {})
    if name in section:
        return getattr(app, name, section[name])
    return None


async def setup(app: Any, hub: Any, api_url: str) -> None:
    """Validate and apply roles and services; install spawn limits. Raises on bad config."""
    roles = Roles(config=app.config)
    load_roles = _app_value(app, "load_roles") or roles.load_roles
    custom = _app_value(app, "custom_scopes") or roles.custom_scopes
    extra_user = _app_value(app, "extra_user_scopes") or roles.extra_user_scopes
    services = ServiceManager(
        hub.db, hub.proxy, api_url, hub.settings.base_url, hub.settings.public_url.rstrip("/"),
        str(app.data_path),
    )  # fmt: skip
    await services.load(list(_app_value(app, "services") or []))
    async with hub.db.session() as s:
        await apply_roles(s, load_roles, custom, extra_user)
        await s.commit()
    limits = SpawnLimits(config=app.config)
    for name in ("named_server_limit_per_user", "active_server_limit", "concurrent_spawn_limit"):
        value = _app_value(app, name)
        if value is not None:
            setattr(limits, name, value)
    hub.settings.named_server_limit_per_user = limits.named_server_limit_per_user
    admission = Admission(hub.servers, limits)
    admission.install()
    hub.servers.after_stop.append(_released(admission))
    hub.servers.extra_routes.append(services.routes)
    hub.extras.update(roles=roles, services=services, admission=admission,
                      culler=Culler(config=app.config), limits=limits)  # fmt: skip


def _released(admission: Admission) -> Any:
    async def hook(_rt: Any) -> None:
        admission.released()

    return hook


async def start(hub: Any) -> None:
    await hub.extras["services"].start()
    hub.extras["culler"].start(hub.db, hub.servers)


async def stop(hub: Any) -> None:
    await hub.extras["culler"].stop()
    await hub.extras["services"].stop()
    writer = hub.extras.get("session_writer")  # store/session_writer.py, made on first login
    if writer is not None:  # logins still queued are committed before the hub exits
        await writer.close()
