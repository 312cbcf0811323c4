"""Services: hub-managed processes and external URLs (protocol §10).

For every service the hub keeps a ``services`` row, a token (``api_token`` from config,
stored hashed, or generated at each start for managed services), a proxy route
``/services/NAME/`` when it has a ``url``, and an OAuth client ``service-NAME`` so users can
log in to it through the hub. Managed services (``command`` set) are started with the
``JUPYTERHUB_*`` environment of §10.2 and restarted with backoff when they exit.

Services from config are authoritative at each start (rows of removed services are deleted);
services added at runtime through the API (``POST /services/NAME``) are external only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import delete, select

from amalthea.hub import rbac
from amalthea.hub.lifecycle.readiness import http_status
from amalthea.hub.security.tokens import hash_token, new_token, token_prefix
from amalthea.hub.store.models import APIToken, OAuthClient, Service

__all__ = ["ServiceError", "ServiceManager", "validate_spec"]

log = logging.getLogger("amalthea.services")

SPEC_KEYS = {
    "name", "url", "api_token", "admin", "command", "environment", "cwd", "user",
    "oauth_client_id", "oauth_redirect_uri", "oauth_client_allowed_scopes", "oauth_roles",
    "oauth_no_confirm", "info", "display", "timeout",
}  # fmt: skip
NAME_RE = re.compile(r"^[^/\s][^/]*[^/\s]$|^[^/\s.]$")
KEEP_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "HOME")


class ServiceError(ValueError):
    """Invalid service definition; the message names the service and the key."""


def validate_spec(spec: Any, runtime: bool = False) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ServiceError(f"A service must be a dict, not {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise ServiceError(
            f"Invalid service name {name!r}: non-empty, no '/', no surrounding spaces"
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ServiceError(f"Service {name!r} has unknown keys {unknown}")
    if runtime and spec.get("command"):
        raise ServiceError("Managed services (with 'command') can only be defined in config")
    checks: dict[str, Any] = {
        "url": str, "api_token": str, "admin": bool, "command": list, "environment": dict,
        "cwd": str, "user": str, "oauth_client_id": str, "oauth_redirect_uri": str,
        "oauth_client_allowed_scopes": list, "oauth_no_confirm": bool, "info": dict,
        "display": bool, "timeout": (int, float),
    }  # fmt: skip
    for key, typ in checks.items():
        if spec.get(key) is not None and (
            not isinstance(spec[key], typ) or (typ is not bool and isinstance(spec[key], bool))
        ):
            raise ServiceError(f"Service {name!r}: {key} has the wrong type")
    url = spec.get("url")
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise ServiceError(f"Service {name!r}: url must be http(s)://host:port, not {url[:80]!r}")
    token = spec.get("api_token")
    if token is not None and not 8 <= len(token) <= 64:
        raise ServiceError(f"Service {name!r}: api_token must be 8-64 characters")
    cid = spec.get("oauth_client_id") or f"service-{name}"
    if not cid.startswith("service-"):
        raise ServiceError(f"Service {name!r}: oauth_client_id must start with 'service-'")
    for scope in spec.get("oauth_client_allowed_scopes") or []:
        try:
            rbac.validate(scope)
        except rbac.ScopeError as e:
            raise ServiceError(f"Service {name!r}: {e}") from None
    if spec.get("command") and not all(isinstance(c, str) for c in spec["command"]):
        raise ServiceError(f"Service {name!r}: command must be a list of strings")
    return dict(spec)


@dataclass
class Running:
    name: str
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0


class ServiceManager:
    """Owns service rows, tokens, OAuth clients, routes and managed processes."""

    def __init__(
        self, db: Any, proxy: Any, api_url: str, base_url: str = "/", public_url: str = "",
        data_dir: str = ".", hub_host: str = "",
    ) -> None:  # fmt: skip
        self.db = db
        self.proxy = proxy
        self.api_url = api_url
        self.base_url = base_url
        self.public_url = public_url
        self.data_dir = Path(data_dir)
        self.hub_host = hub_host
        self.specs: dict[str, dict[str, Any]] = {}
        self.running: dict[str, Running] = {}
        self._stopping = False

    def prefix(self, name: str) -> str:
        return f"{self.base_url}services/{name}/"

    # ---- config ---------------------------------------------------------------------------
    async def load(self, specs: list[dict[str, Any]]) -> None:
        """Validate config services and write rows/tokens/clients (before roles are applied)."""
        validated = [validate_spec(s) for s in specs]
        names = [s["name"] for s in validated]
        if len(set(names)) != len(names):
            raise ServiceError(f"Services defined more than once: {sorted(names)}")
        async with self.db.session() as s:
            await s.execute(delete(Service).where(Service.from_config.is_(True),
                                                  Service.name.not_in(names)))  # fmt: skip
            for spec in validated:
                self.specs[spec["name"]] = spec
                await self._write(s, spec, from_config=True)
            await s.commit()

    async def _write(self, s: Any, spec: dict[str, Any], from_config: bool) -> Service:
        name = spec["name"]
        row = (await s.execute(select(Service).where(Service.name == name))).scalar()
        if row is None:
            row = Service(name=name)
            s.add(row)
        row.admin = bool(spec.get("admin", False))
        row.url = spec.get("url")
        row.info = spec.get("info") or {}
        row.display = spec.get("display", True)
        row.oauth_no_confirm = bool(spec.get("oauth_no_confirm", False))
        row.oauth_client_allowed_scopes = list(spec.get("oauth_client_allowed_scopes") or [])
        row.command = list(spec.get("command") or [])
        row.cwd = spec.get("cwd")
        row.environment = dict(spec.get("environment") or {})
        row.user = spec.get("user")
        row.from_config = from_config
        await s.flush()
        # one token per service, replaced at each start (a config token is stable anyway)
        await s.execute(delete(APIToken).where(APIToken.service_id == row.id,
                                               APIToken.client_id == "jupyterhub"))  # fmt: skip
        token = spec.get("api_token")
        # SHA-256 like every token the hub looks up by hash (security/tokens.py explains why
        # a slow hash buys nothing for random tokens; config tokens must be random too)
        note = "from config" if token else "generated at startup"
        token = token or new_token()
        hashed = hash_token(token)
        s.add(APIToken(service_id=row.id, hashed=hashed, prefix=token_prefix(token), note=note,
                       scopes=["inherit"], client_id="jupyterhub"))  # fmt: skip
        spec["_token"] = token
        await self._client(s, spec, hashed)
        return cast(Service, row)

    async def _client(self, s: Any, spec: dict[str, Any], secret_hash: str) -> None:
        name = spec["name"]
        if not (spec.get("url") or spec.get("oauth_client_id") or spec.get("oauth_redirect_uri")):
            return
        cid = spec.get("oauth_client_id") or f"service-{name}"
        redirect = spec.get("oauth_redirect_uri") or f"{self.prefix(name)}oauth_callback"
        allowed = sorted({*(spec.get("oauth_client_allowed_scopes") or []),
                          f"access:services!service={name}"})  # fmt: skip
        client = (
            await s.execute(select(OAuthClient).where(OAuthClient.identifier == cid))
        ).scalar()
        if client is None:
            client = OAuthClient(identifier=cid)
            s.add(client)
        client.description = f"JupyterHub service {name}"
        client.secret = secret_hash
        client.redirect_uri = redirect
        client.allowed_scopes = allowed

    async def add_runtime(self, spec: dict[str, Any]) -> Service:
        """``POST /services/NAME``: an external service added while running."""
        spec = validate_spec(spec, runtime=True)
        async with self.db.session() as s:
            if (await s.execute(select(Service.id).where(Service.name == spec["name"]))).scalar():
                raise ServiceError(f"Service {spec['name']} already exists")
            row = await self._write(s, spec, from_config=False)
            await s.commit()
        self.specs[spec["name"]] = spec
        await self._route(spec)
        return row

    async def remove_runtime(self, name: str) -> None:
        async with self.db.session() as s:
            await s.execute(delete(Service).where(Service.name == name))
            cid = (self.specs.get(name) or {}).get("oauth_client_id") or f"service-{name}"
            await s.execute(delete(OAuthClient).where(OAuthClient.identifier == cid))
            await s.commit()
        spec = self.specs.pop(name, None)
        if spec and spec.get("url"):
            try:
                await self.proxy.delete_route(self.prefix(name))
            except Exception:
                log.exception("removing route of service %s", name)

    # ---- routes ---------------------------------------------------------------------------
    async def _route(self, spec: dict[str, Any]) -> None:
        url = spec.get("url")
        if not url:
            return
        parts = urlsplit(url)
        target = f"{parts.scheme}://{parts.netloc}"
        await self.proxy.add_route(self.prefix(spec["name"]), target, {"service": spec["name"]})

    async def add_routes(self) -> None:
        await asyncio.gather(*(self._route(spec) for spec in self.specs.values()))

    def routes(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Routes the route sync must keep: {routespec: (target, data)}."""
        out = {}
        for spec in self.specs.values():
            if spec.get("url"):
                p = urlsplit(spec["url"])
                out[self.prefix(spec["name"])] = (
                    f"{p.scheme}://{p.netloc}",
                    {"service": spec["name"]},
                )
        return out

    # ---- managed processes ---------------------------------------------------------------
    def env(self, spec: dict[str, Any]) -> dict[str, str]:
        name = spec["name"]
        token = spec.get("_token", "")
        scopes = json.dumps(rbac.service_access_scopes(name))
        env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
        env.update({
            "JUPYTERHUB_SERVICE_NAME": name,
            "JUPYTERHUB_API_TOKEN": token,
            "JPY_API_TOKEN": token,
            "JUPYTERHUB_API_URL": self.api_url,
            "JUPYTERHUB_BASE_URL": self.base_url,
            "JUPYTERHUB_CLIENT_ID": spec.get("oauth_client_id") or f"service-{name}",
            "JUPYTERHUB_HOST": self.hub_host,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": spec.get("oauth_redirect_uri")
            or f"{self.prefix(name)}oauth_callback",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
            "JUPYTERHUB_OAUTH_SCOPES": scopes,
            "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps(
                spec.get("oauth_client_allowed_scopes") or []),
            "JUPYTERHUB_USER": spec.get("user") or "",
            "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
            "JUPYTERHUB_PUBLIC_URL": "",
            "JUPYTERHUB_PUBLIC_HUB_URL": f"{self.public_url}{self.base_url}hub/" if self.public_url else "",
        })  # fmt: skip
        if spec.get("url"):
            env["JUPYTERHUB_SERVICE_URL"] = spec["url"]
            env["JUPYTERHUB_SERVICE_PREFIX"] = self.prefix(name)
        env.update({k: str(v) for k, v in (spec.get("environment") or {}).items()})
        return env

    async def start(self) -> None:
        """Add routes and start managed services; waits (up to ``timeout``) for their URLs."""
        await self.add_routes()
        for name, spec in self.specs.items():
            if spec.get("command"):
                run = self.running[name] = Running(name)
                run.task = asyncio.create_task(self._supervise(spec, run))
        await asyncio.gather(*(self._wait_up(spec) for spec in self.specs.values()
                               if spec.get("command") and spec.get("url")))  # fmt: skip

    async def _wait_up(self, spec: dict[str, Any]) -> None:
        p = urlsplit(spec["url"])
        url = f"{p.scheme}://{p.netloc}{self.prefix(spec['name'])}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(spec.get("timeout") or 30)
        while loop.time() < deadline:
            status = await http_status(url, timeout=2.0)
            if status is not None and status < 500:
                return
            await asyncio.sleep(0.2)
        log.error("service %s did not answer at %s within %ss", spec["name"], url,
                  spec.get("timeout") or 30)  # fmt: skip

    async def _supervise(self, spec: dict[str, Any], run: Running) -> None:
        name = spec["name"]
        logdir = self.data_dir / "services"
        logdir.mkdir(parents=True, exist_ok=True)
        delay = 1.0
        while not self._stopping:
            with open(logdir / f"{name}.log", "ab") as logf:  # noqa: ASYNC230 (opening a log is instant)
                try:
                    run.process = await asyncio.create_subprocess_exec(
                        *spec["command"], env=self.env(spec), cwd=spec.get("cwd") or None,
                        stdout=logf, stderr=logf, start_new_session=True,
                    )  # fmt: skip
                except OSError as e:
                    log.error("cannot start service %s (%s): %s", name, spec["command"], e)
                    return
                await self._set_pid(name, run.process.pid)
                log.info("service %s started (pid %s)", name, run.process.pid)
                code = await run.process.wait()
            if self._stopping:
                break
            run.restarts += 1
            log.warning("service %s exited with %s; restarting in %.0fs", name, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _set_pid(self, name: str, pid: int | None) -> None:
        async with self.db.session() as s:
            row = (await s.execute(select(Service).where(Service.name == name))).scalar()
            if row is not None:
                row.pid = pid
                await s.commit()

    def pid(self, name: str) -> int | None:
        run = self.running.get(name)
        if run and run.process and run.process.returncode is None:
            return run.process.pid
        return None

    async def stop(self) -> None:
        self._stopping = True
        for run in self.running.values():
            if run.process and run.process.returncode is None:
                try:
                    run.process.terminate()
                except ProcessLookupError:
                    pass
        for run in self.running.values():
            if run.process:
                try:
                    await asyncio.wait_for(run.process.wait(), 5)
                except TimeoutError:
                    run.process.kill()
            if run.task:
                run.task.cancel()
                await asyncio.gather(run.task, return_exceptions=True)
