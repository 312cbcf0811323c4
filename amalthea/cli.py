"""``amalthea``: start hub + proxy; ``--generate-config``, ``upgrade-db``, ``--version``, ``--help``.

Config errors (unknown key, bad value, broken plugin) print one clear message and exit 2, never
a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from traitlets import TraitError
from traitlets.config import Config

__all__ = ["main"]


def _configure_logging(level: int) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )  # fmt: skip
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    if level > logging.DEBUG:
        logging.getLogger("amalthea.access").setLevel(logging.WARNING)


def _fail(message: str) -> int:
    print(f"amalthea: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from amalthea.hub.app import Amalthea
    from amalthea.hub.settings import ConfigError, validate_config
    from amalthea.plugins import PluginLoadError

    subcommand = argv.pop(0) if argv and argv[0] in ("upgrade-db",) else None
    try:
        app = Amalthea()
        app.parse_command_line(argv)
        if Path(app.config_file).exists():
            app.load_config_file(app.config_file)
        elif app.config_file != "amalthea_config.py" and not app.generate_config:
            return _fail(f"config file {app.config_file} not found")
        roots = [Amalthea, app.authenticator_class, app.spawner_class, app.proxy_class]
        for warning in validate_config(app.config, roots):
            print(f"amalthea: warning: {warning}", file=sys.stderr)
        app.update_config(Config())  # re-read class values after the file
    except (ConfigError, TraitError, PluginLoadError) as e:
        return _fail(str(e))
    if app.generate_config:
        return _generate_config(app)
    _configure_logging(app.log_level if isinstance(app.log_level, int) else logging.INFO)
    if subcommand == "upgrade-db":
        from amalthea.hub.store.migrate import upgrade

        upgrade(app.database_url)
        print(f"Database {app.database_url} is at the current schema.")
        return 0
    try:
        asyncio.run(app.serve())
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


def _generate_config(app: object) -> int:
    from amalthea.hub.app import Amalthea

    path = Path("amalthea_config.py")
    if path.exists():
        return _fail(f"{path} exists; remove it first (it is not overwritten).")
    classes = [Amalthea, app.authenticator_class, app.spawner_class]  # type: ignore[attr-defined]
    text = "# Configuration file for Amalthea.\n\nc = get_config()  # noqa\n\n"
    for cls in classes:
        text += cls.class_config_section()  # type: ignore[attr-defined]
        text += "\n"
    path.write_text(text)
    print(f"Wrote {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
