"""A real OpenID provider for tests: node-oidc-provider on 127.0.0.1.

``start_provider()`` installs ``oidc-provider`` from the npm registry into a cache directory
(once; ~4 s), starts ``provider.mjs`` with Node on an ephemeral port and returns a handle with
the issuer URL. The provider has real password-checked users and a consent form, so a plain HTTP
client can walk through the whole authorization-code flow.

Why a copy of the script in the cache directory: Node resolves ES-module imports relative to the
importing file and ignores NODE_PATH, so the script must sit next to its ``node_modules``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: npm packages the provider needs (pinned so a new major cannot break the tests silently)
NPM_PACKAGES = ["oidc-provider@9.13.3", "jose@6"]
CACHE_DIR = (
    Path(os.environ.get("AMALTHEA_TEST_CACHE", Path.home() / ".cache" / "amalthea-test"))
    / "oidc-provider"
)
SCRIPT = Path(__file__).with_name("provider.mjs")

DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "alice-pw", "groups": ["physics", "hub-admins"], "name": "Alice A."},
    "bob": {"password": "bob-pw", "groups": ["chemistry"], "name": "Bob B."},
}


class ProviderError(RuntimeError):
    """The test provider could not be installed or started."""


def install() -> Path:
    """Install the npm packages into CACHE_DIR if missing; return the directory."""
    marker = CACHE_DIR / (".installed-" + "-".join(NPM_PACKAGES).replace("@", "_"))
    if not marker.exists():
        node = shutil.which("node")
        npm = shutil.which("npm")
        if not node or not npm:
            raise ProviderError("node and npm are needed: apt-get install -y nodejs npm")
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
        if int(version.lstrip("v").split(".")[0] or 0) < 20:
            raise ProviderError(f"oidc-provider 9 needs Node.js >= 20, found {version.strip()}")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-save", *NPM_PACKAGES],
            cwd=CACHE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise ProviderError(
                f"npm install {' '.join(NPM_PACKAGES)} failed:\n{proc.stderr[-2000:]}"
            )
        marker.touch()
    shutil.copyfile(SCRIPT, CACHE_DIR / SCRIPT.name)
    return CACHE_DIR


@dataclass
class RunningProvider:
    issuer: str
    process: subprocess.Popen[str]
    users: dict[str, dict[str, Any]]
    clients: list[dict[str, Any]]
    log: list[str] = field(default_factory=list)


@contextmanager
def start_provider(
    clients: list[dict[str, Any]],
    users: dict[str, dict[str, Any]] | None = None,
    access_token_ttl: int = 3600,
    startup_timeout: float = 30.0,
) -> Iterator[RunningProvider]:
    """Run the provider for the duration of the ``with`` block.

    ``clients`` are oidc-provider client metadata dicts (client_id, client_secret, redirect_uris,
    grant_types, post_logout_redirect_uris...).
    """
    directory = install()
    users = users or DEFAULT_USERS
    config = {"clients": clients, "users": users, "access_token_ttl": access_token_ttl}
    env = {**os.environ, "OIDC_TEST_CONFIG": json.dumps(config), "NODE_ENV": "test"}
    proc = subprocess.Popen(
        ["node", str(directory / SCRIPT.name)],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = RunningProvider("", proc, users, clients)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.log.append(line.rstrip())
            if line.startswith("READY ") and not ready.is_set():
                running.issuer = f"http://127.0.0.1:{int(line.split()[1])}"
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(startup_timeout) or proc.poll() is not None:
            raise ProviderError("oidc-provider did not start:\n" + "\n".join(running.log[-40:]))
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(2)
