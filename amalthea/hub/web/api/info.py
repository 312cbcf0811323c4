"""``GET /hub/api`` (version, no auth), ``/hub/api/info``, ``/hub/api/health``."""

from __future__ import annotations

import sys

from amalthea import JUPYTERHUB_COMPAT_VERSION, __version__
from amalthea.hub.web.base import APIHandler


class RootHandler(APIHandler):
    async def prepare(self) -> None:
        pass  # no authentication at all: clients probe this before they have a token

    def get(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")
        self.write_json({"version": JUPYTERHUB_COMPAT_VERSION})


class InfoHandler(APIHandler):
    def get(self) -> None:
        self.need("read:hub")
        auth = type(self.hub.authenticator)
        spawner = self.hub.spawner_class
        self.write_json({
            "version": JUPYTERHUB_COMPAT_VERSION,
            "amalthea_version": __version__,
            "python": sys.version,
            "sys_executable": sys.executable,
            "authenticator": {"class": f"{auth.__module__}.{auth.__name__}", "version": __version__},
            "spawner": {"class": f"{spawner.__module__}.{spawner.__name__}", "version": __version__},
        })  # fmt: skip


class HealthHandler(APIHandler):
    async def prepare(self) -> None:
        pass

    def get(self) -> None:
        self.finish()

    def head(self) -> None:
        self.finish()


priority = 10
handlers = [
    (r"/?", RootHandler),
    (r"/info", InfoHandler),
    (r"/health", HealthHandler),
]
