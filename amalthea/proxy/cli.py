"""``amalthea-proxy``: command line compatible with configurable-http-proxy's main flags.

The REST API token comes from ``CONFIGPROXY_AUTH_TOKEN``, as for CHP. SIGTERM/SIGINT stop
the proxy cleanly (routes are saved) and exit with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import MISSING

from .config import ProxyConfig
from .server import ProxyServer

__all__ = ["build_parser", "main"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amalthea-proxy",
        description="HTTP/WebSocket reverse proxy with configurable-http-proxy's REST API. "
        "API token: environment variable CONFIGPROXY_AUTH_TOKEN.",
    )
    for f in ProxyConfig.cli_fields():
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            conv = int if f.type in ("int", int) else str
            p.add_argument(
                flag,
                type=conv,
                default=default,
                help=f"{f.metadata['help']} (default: {default!r})",
            )
    p.add_argument("--pid-file", default="", help="Write the process id to this file")
    return p


def config_from_args(argv: list[str] | None = None) -> tuple[ProxyConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in ProxyConfig.cli_fields()}
    cfg = ProxyConfig(**values, auth_token=os.environ.get("CONFIGPROXY_AUTH_TOKEN", ""))
    return cfg, args


def main(argv: list[str] | None = None) -> None:
    cfg, args = config_from_args(argv)
    logging.basicConfig(
        level=_LEVELS.get(cfg.log_level.lower(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if cfg.access_log:
        logging.getLogger("amalthea.proxy.access").setLevel(logging.INFO)
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(str(os.getpid()))
    try:
        server = ProxyServer(cfg)
    except ValueError as e:
        sys.exit(f"amalthea-proxy: {e}")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_run(server))
    except (ValueError, OSError) as e:
        sys.exit(f"amalthea-proxy: {e}")


async def _run(server: ProxyServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.serve(stop)


if __name__ == "__main__":
    main()
