"""The REST API under ``{base}hub/api``.

REGISTRATION POINT: every module in this package that defines ``handlers`` is loaded, in module
name order, and its ``handlers`` list of ``(pattern, HandlerClass[, kwargs])`` is mounted under
``{hub_prefix}api``; patterns start with ``/`` (e.g. ``r"/users/([^/]+)/tokens"``). To add
endpoints, add a module here; no other file needs editing. A module that must win over another's
pattern can set ``priority = <int>`` (lower first, default 100). Handlers subclass
``amalthea.hub.web.base.APIHandler`` (JSON errors, token/cookie identity, ``self.need(scope,
user=...)``). Anything under /api that matches nothing answers the JSON 404 of ``fallback``.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

from tornado import web

from amalthea.hub.web.base import APIHandler

log = logging.getLogger("amalthea.web")


class NotFoundAPIHandler(APIHandler):
    def prepare(self) -> None:  # type: ignore[override]
        raise web.HTTPError(404)


def api_handlers(api_prefix: str) -> list[tuple[Any, ...]]:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        try:
            mod = importlib.import_module(f"{__name__}.{info.name}")
        except ImportError as e:  # an optional extra is missing (e.g. pyotp for MFA pages)
            log.warning("%s.%s is disabled: %s", __name__, info.name, e)
            continue
        if hasattr(mod, "handlers"):
            modules.append((getattr(mod, "priority", 100), info.name, mod))
    out: list[tuple[Any, ...]] = []
    for _prio, _name, mod in sorted(modules, key=lambda m: (m[0], m[1])):
        for entry in mod.handlers:
            pattern, cls, *rest = entry
            out.append((api_prefix + pattern, cls, *rest))
    out.append((api_prefix + r"/.*", NotFoundAPIHandler))
    return out
