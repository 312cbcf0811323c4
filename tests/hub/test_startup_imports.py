"""Guard the hub's restart time: its startup path must not import what only some requests need.

A restart is mostly Python imports (issue 3: restart with 10,000 users <= 1 s), so a heavy
import added at the top of a module on the startup path undoes the work silently. Timing tests
are flaky on a shared machine; this checks *what* is imported instead. A subprocess (clean
``sys.modules``) builds a real hub on a fresh SQLite database the way ``amalthea`` does
(config parsed, plugins loaded, ``build``, ``reconcile``, web application with every handler)
and reports the modules it ended up with.

If this fails because you need one of these modules, import it inside the function that uses
it (see ``amalthea/hub/web/templates.py`` for jinja2), or, if the startup path really needs it,
remove it from the list and say why in the commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: top-level packages a start must not import: pages (jinja2), migrations (alembic), password
#: hashing (argon2), auth_state encryption (cryptography), date parsing (dateutil), optional
#: plugins' dependencies, and the single-user server's stack
HEAVY = [
    "jinja2", "alembic", "mako", "argon2", "cryptography", "dateutil", "ldap3", "joserfc",
    "httpx", "pamela", "gssapi", "pyotp", "aiodocker", "redis", "asyncpg", "psycopg",
    "jupyter_server", "jupyterlab", "ipykernel", "IPython", "prometheus_client",
]  # fmt: skip

SCRIPT = """
import asyncio, json, sys
from amalthea import cli  # the console script's module

async def start(argv):
    from amalthea.hub.app import Amalthea
    app = Amalthea()
    app.parse_command_line(argv)
    hub = await app.build()
    await hub.servers.reconcile()
    await app._first_run(hub)
    app.web_app(hub)
    await hub.db.dispose()

asyncio.run(start(sys.argv[1:]))
print(json.dumps(sorted(sys.modules)))
"""


def _startup_modules(tmp_path: Path, *argv: str) -> set[str]:
    """The modules of a *re*start: the first run creates the schema (which needs Alembic)."""
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, f"--data-dir={tmp_path}", *argv],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="defaults"),  # local authenticator, local-shared spawner
        pytest.param(["--authenticator=dummy"], id="benchmark"),
    ],
)
def test_start_does_not_import_heavy_modules(tmp_path: Path, argv: list[str]) -> None:
    modules = _startup_modules(tmp_path, *argv)
    assert "amalthea.hub.web.api.users" in modules, "the script no longer builds the web app"
    loaded = sorted(m for m in HEAVY if m in modules)
    assert not loaded, (
        f"starting the hub imported {loaded}; import them where they are used (see this "
        "module's docstring)"
    )


def test_version_does_not_import_the_hub(tmp_path: Path) -> None:
    code = (
        "import sys; from amalthea import cli; sys.argv[1:] = ['--version']; cli.main(); "
        "print('amalthea.hub.app' in sys.modules, 'sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[1:] == ["False", "False"], out.stdout


def test_port_is_bound_before_sqlalchemy(tmp_path: Path) -> None:
    """Config, plugins and the gate with its early API (what runs before the port is bound and
    while the rest loads) must not import SQLAlchemy: that import is most of a restart."""
    code = (
        "import sys; from amalthea import cli; from amalthea.hub.app import Amalthea\n"
        "from amalthea.plugins import AUTHENTICATORS, PROXIES, SPAWNERS, load\n"
        "for group, name in ((AUTHENTICATORS, 'dummy'), (AUTHENTICATORS, 'local'),"
        " (SPAWNERS, 'local-shared'), (PROXIES, 'amalthea')): load(group, name)\n"
        "app = Amalthea(); app.parse_command_line([f'--data-dir={sys.argv[1]}'])\n"
        "app._gate()\n"
        "print(sorted(m for m in ('sqlalchemy', 'aiosqlite', 'alembic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
