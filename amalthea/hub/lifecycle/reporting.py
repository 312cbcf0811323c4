"""Servers that tell the hub where they listen (batch jobs): the report URL.

A spawner that cannot know its server's host and port in advance (a batch job lands on some
node and picks a port there) offers ``report_address(ip, port)``. For those, and only those,
:func:`install` puts a per-server URL into ``SpawnContext.report_url`` and into the server's
environment as ``AMALTHEA_REPORT_URL`` (batch job scripts export it on the node), and
amalthea-singleuser POSTs ``{"ip", "port"}`` there with its API token once it listens (``amalthea.hub.web.api.report`` takes it and calls ``report_address``).

The URL is under the hub API the server already reaches (``JUPYTERHUB_API_URL``)::

    <api_url>/users/<name>/server/report          the default server
    <api_url>/users/<name>/servers/<server>/report  a named server
"""

from __future__ import annotations

from typing import Any

from amalthea.hub.lifecycle.env import q
from amalthea.hub.lifecycle.manager import SpawnerFactory
from amalthea.spawners.base import SpawnContext, Spawner

__all__ = ["install", "report_url", "takes_reports"]


def report_url(api_url: str, username: str, server_name: str) -> str:
    base = f"{api_url.rstrip('/')}/users/{q(username)}/"
    return base + (f"servers/{q(server_name)}/report" if server_name else "server/report")


def takes_reports(spawner: Any) -> bool:
    return callable(getattr(spawner, "report_address", None))


def install(manager: Any) -> None:
    """Give every spawner with ``report_address`` its report URL."""
    inner: SpawnerFactory = manager.spawner_factory

    def make(ctx: SpawnContext) -> Spawner:
        spawner = inner(ctx)
        if takes_reports(spawner):
            ctx.report_url = report_url(manager.urls.api_url, ctx.username, ctx.server_name)
            # the hub adds its JUPYTERHUB_* contract to ctx.env after this; ours stays
            ctx.env["AMALTHEA_REPORT_URL"] = ctx.report_url
        return spawner

    manager.spawner_factory = make
