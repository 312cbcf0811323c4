"""Run ``amalthea`` with a timeline of its startup on stderr (used by ``restart_profile.py --timeline``).

    python benchmarks/hub/startup_timeline.py -f config.py

Prints, in ms since this interpreter started running Python code, when the imports finished and
when each startup step (listen, the hub's imports, build, reconcile, the gate opening, route
sync), the first early answers and the first requests of the full hub began and ended. Wraps the steps from outside: nothing in the hub knows about this.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

T0 = time.perf_counter()


def mark(what: str) -> None:
    print(f"[timeline] {1000 * (time.perf_counter() - T0):7.1f} ms  {what}", file=sys.stderr,
          flush=True)  # fmt: skip


def wrap(owner: Any, name: str, label: str, limit: int = 1) -> None:
    fn = getattr(owner, name)
    calls = [0]

    if _is_async(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] > limit:
                return await fn(*args, **kwargs)
            mark(f"{label} ...")
            try:
                return await fn(*args, **kwargs)
            finally:
                mark(f"{label} done")

        setattr(owner, name, awrapper)
        return

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > limit:
            return fn(*args, **kwargs)
        mark(f"{label} ...")
        try:
            return fn(*args, **kwargs)
        finally:
            mark(f"{label} done")

    setattr(owner, name, wrapper)


def _is_async(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def main() -> int:
    from amalthea import cli

    mark("amalthea.cli imported")
    from amalthea.hub import app as app_module

    mark("amalthea.hub.app imported")
    from tornado import web
    from tornado.httpserver import HTTPServer

    from amalthea.hub.web import gate

    amalthea = app_module.Amalthea
    for name in ("build", "_first_run", "web_app", "_load_config_tokens", "_gate"):
        wrap(amalthea, name, f"Amalthea.{name}")
    wrap(app_module, "_import_hub_in_thread", "hub modules imported in a thread")
    wrap(gate.Gate, "open", "gate opens (held requests to the full hub)")
    wrap(gate._Pending, "respond", "early answer", limit=4)
    import_hub = app_module._import_hub

    def import_and_wrap() -> None:  # SQLAlchemy only once the hub itself imports it
        import_hub()
        from amalthea.hub.lifecycle.manager import ServerManager

        wrap(ServerManager, "reconcile", "reconcile")
        wrap(ServerManager, "sync_routes", "sync_routes")

    app_module._import_hub = import_and_wrap  # type: ignore[attr-defined]
    wrap(HTTPServer, "listen", "listen")
    wrap(web.RequestHandler, "_execute", "request", limit=4)
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
