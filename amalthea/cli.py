"""``amalthea``: start hub + proxy; ``--generate-config``, ``upgrade-db``, ``--version``, ``--help``.

Config errors (unknown key, bad value, broken plugin) print one clear message and exit 2, never
a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

__all__ = ["main"]


def _configure_logging(level: int) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
    )  # fmt: skip
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    if level > logging.DEBUG:
        logging.getLogger("amalthea.access").setLevel(logging.WARNING)
        # Alembic's INFO lines (plugin setup, "Context impl") buried the first-run setup link
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _fail(message: str) -> int:
    print(f"amalthea: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # answered without importing the hub (most of a second)
        from amalthea import __version__

        print(__version__)
        return 0
    if not gc.isenabled():  # whoever called us manages the collector
        return _main(argv, started=None)
    gc.disable()  # until the hub answers: see _startup_done
    try:
        return _main(argv, started=_startup_done)
    finally:
        gc.enable()


def _startup_done() -> None:
    """End the garbage collector's pause that ``main`` began, freezing what startup built.

    Startup creates ~100k long-lived objects (modules, classes, SQLAlchemy's mappers and
    compiled statements) and almost no garbage (~500 objects). With the collector on, the
    allocations trigger a dozen generation-1 and a full collection that walk all of them:
    ~15% of a start (issue 3: restart time). ``gc.freeze()`` then moves them out of the
    collector's view, so later full collections while serving skip them too (one costs
    ~50 ms with them). The few garbage objects stay; that is a few kilobytes, once.
    """
    gc.freeze()
    gc.enable()


def _main(argv: list[str], started: Callable[[], None] | None) -> int:
    from amalthea.hub.app import Amalthea
    from amalthea.hub.settings import ConfigError, validate_config
    from amalthea.plugins import PluginLoadError

    subcommand = argv.pop(0) if argv and argv[0] in ("upgrade-db",) else None
    try:
        app = Amalthea()
        app.parse_command_line(argv)
        file_config = Config()
        path = Path(app.config_file)
        if path.exists():
            file_config = PyFileConfigLoader(path.name, str(path.parent.resolve())).load_config()
        elif app.config_file != "amalthea_config.py" and not app.generate_config:
            return _fail(f"config file {app.config_file} not found")
        # check the file before applying it, so a bad plugin name is reported with its key
        roots = [Amalthea, *_plugin_roots(file_config, app)]
        for warning in validate_config(file_config, roots):
            print(f"amalthea: warning: {warning}", file=sys.stderr)
        app.update_config(file_config)
        app.update_config(app.cli_config)  # the command line wins over the file
    except (ConfigError, TraitError, PluginLoadError) as e:
        return _fail(str(e))
    if app.generate_config:
        return _generate_config(app)
    _configure_logging(app.log_level if isinstance(app.log_level, int) else logging.INFO)
    if subcommand == "upgrade-db":
        from amalthea.hub.store.migrate import upgrade

        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # each step
        upgrade(app.database_url)
        print(f"Database {app.database_url} is at the current schema.")
        return 0
    try:
        asyncio.run(app.serve(started=started))
    except KeyboardInterrupt:
        pass
    except Exception as e:  # startup problems: one clear line, details at debug
        from amalthea.hub.proxy_client import ProxyError
        from amalthea.hub.security.secrets_file import SecretsFileError
        from amalthea.hub.store.migrate import DatabaseNeedsUpgrade

        if isinstance(e, (ProxyError, SecretsFileError, DatabaseNeedsUpgrade, ValueError, OSError)):
            logging.getLogger("amalthea").debug("startup failed", exc_info=True)
            return _fail(str(e))
        raise
    return 0


def _plugin_roots(file_config: Config, app: object) -> list[type]:
    """The authenticator/spawner/proxy classes the config selects (file first, then defaults)."""
    from amalthea.hub.app import Amalthea
    from amalthea.hub.settings import ConfigError
    from amalthea.plugins import AUTHENTICATORS, PROXIES, SPAWNERS, PluginLoadError, load

    section = file_config.get("Amalthea", Config())
    roots: list[type] = []
    for key, group in (("authenticator_class", AUTHENTICATORS), ("spawner_class", SPAWNERS),
                       ("proxy_class", PROXIES)):  # fmt: skip
        value = section.get(key) if key in section else None
        if value is None:
            roots.append(getattr(app, key))
        elif isinstance(value, type):
            roots.append(value)
        else:
            try:
                roots.append(load(group, str(value)))
            except PluginLoadError as e:
                raise ConfigError(f"Invalid setting c.Amalthea.{key} = {value!r}: {e}") from None
    _ = Amalthea
    return roots


def _generate_config(app: object) -> int:
    from amalthea.hub.app import Amalthea

    path = Path("amalthea_config.py")
    if path.exists():
        return _fail(f"{path} exists; remove it first (it is not overwritten).")
    from amalthea.auth.base import Authenticator
    from amalthea.spawners.base import Spawner

    classes = [Amalthea, Authenticator, app.authenticator_class, Spawner, app.spawner_class,  # type: ignore[attr-defined]
               app.proxy_class]  # type: ignore[attr-defined]  # fmt: skip
    classes = list(dict.fromkeys(classes))
    text = "# Configuration file for Amalthea.\n\nc = get_config()  # noqa\n\n"
    for cls in classes:
        text += cls.class_config_section(classes)
        text += "\n"
    path.write_text(text)
    print(f"Wrote {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
