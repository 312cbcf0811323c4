"""HTML pages under ``{base}hub/``.

REGISTRATION POINT (same scheme as ``web/api``): every module here with a ``handlers`` list of
``(pattern, HandlerClass[, kwargs])`` is mounted under the hub prefix; patterns are relative to
it without a leading slash (e.g. ``r"admin"``). ``priority`` orders modules (lower first).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

log = logging.getLogger("amalthea.web")


def page_handlers(hub_prefix: str) -> list[tuple[Any, ...]]:
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
        for pattern, cls, *rest in mod.handlers:
            out.append((hub_prefix + pattern, cls, *rest))
    return out
