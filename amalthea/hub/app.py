"""The composition root: read config, build the hub's parts, wire them, start, stop.

No behaviour lives here beyond ordering. Startup order matters for users:
database → authenticator → servers found again (reconcile) → hub listens → proxy found or
started → routes synced → first-run setup link printed.

Shutdown (SIGTERM/SIGINT): stop the hub; servers and the proxy keep running unless
``cleanup_servers`` / ``cleanup_proxy`` say otherwise, so a restart is invisible to users.
SIGHUP always leaves servers and proxy running (for upgrades).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tornado.httpserver import HTTPServer
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default
from traitlets.config import Application

from amalthea import __version__
from amalthea.auth.base import AuthContext, Authenticator
from amalthea.hub.context import HubContext, HubSettings
from amalthea.hub.security.redact import redact_uri
from amalthea.hub.security.tokens import hash_token, new_code
from amalthea.plugins import AUTHENTICATORS, PROXIES, SPAWNERS, PluginType, installed, load
from amalthea.spawners.base import SpawnContext, Spawner

if TYPE_CHECKING:
    from tornado import web

    from amalthea.hub.store.accounts import SQLAccountStore
    from amalthea.hub.store.db import Database
    from amalthea.hub.web.gate import Gate

__all__ = ["Amalthea"]

HERE = Path(__file__).parent

#: what ``build`` and ``web_app`` need beyond config: SQLAlchemy, the models, the lifecycle and
#: every handler, most of a start's CPU. ``serve`` imports them in a worker thread while the
#: early API answers (``web/gate.py``); their import statements stay in the methods below.
_HUB_MODULES = (
    "amalthea.hub.store.db", "amalthea.hub.store.queries", "amalthea.hub.store.accounts",
    "amalthea.hub.store.migrate", "amalthea.hub.lifecycle", "amalthea.hub.lifecycle.env",
    "amalthea.hub.lifecycle.housekeeping", "amalthea.hub.oauth", "amalthea.hub.security.identity",
    "amalthea.hub.security.forwarded", "amalthea.hub.features", "amalthea.hub.logins",
    "amalthea.hub.lifecycle.profiles_glue", "amalthea.hub.lifecycle.reporting",
    "amalthea.hub.web.api", "amalthea.hub.web.pages",
)  # fmt: skip


async def _import_hub_in_thread() -> None:
    switch = sys.getswitchinterval()
    # the import thread holds the GIL between switches, and the loop needs it back quickly for
    # each early answer (sqlite3 releases it around every statement): 5 ms -> 0.5 ms meanwhile
    sys.setswitchinterval(0.0005)
    try:
        await asyncio.to_thread(_import_hub)
    finally:
        sys.setswitchinterval(switch)


def _import_hub() -> None:
    import contextlib
    import pkgutil

    for name in _HUB_MODULES:
        importlib.import_module(name)
    for package in ("amalthea.hub.web.api", "amalthea.hub.web.pages"):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            with contextlib.suppress(ImportError):  # web_app() reports a missing extra
                importlib.import_module(f"{package}.{info.name}")


def _default_spawner(authenticator: type[Authenticator]) -> str:
    """The right local spawner for the embedded defaults.

    ``local`` (each server runs as the Unix account of the same name) only fits when the hub is
    root AND its users are Unix accounts (PAM). With the default ``local`` authenticator people
    are hub accounts, not Unix accounts, so ``local-shared`` (servers run as the hub's user in
    per-user directories) is the one that works out of the box.
    """
    if os.geteuid() == 0 and getattr(authenticator, "system_accounts", False):
        return "local"
    return "local-shared"


class Amalthea(Application):
    name = "amalthea"
    version = __version__
    description = "Amalthea: a multi-user notebook hub (JupyterHub 6 compatible)."

    config_file = Unicode("amalthea_config.py", help="Config file to load.").tag(config=True)
    generate_config = Bool(False, help="Write a commented default config file and exit.").tag(
        config=True
    )
    bind_url = Unicode(
        "http://127.0.0.1:8000", help="Public URL of the proxy (what users open)."
    ).tag(config=True)
    hub_bind_url = Unicode(
        "http://127.0.0.1:8081", help="Where the hub itself listens (behind the proxy)."
    ).tag(config=True)
    hub_connect_url = Unicode(
        "", help="Hub URL as single-user servers reach it; default hub_bind_url."
    ).tag(config=True)
    base_url = Unicode("/", help="URL prefix of everything (the hub is at <base_url>hub/).").tag(
        config=True
    )
    public_url = Unicode(
        "", help="Public origin for absolute links (https://hub.example.org), '' = relative."
    ).tag(config=True)
    data_dir = Unicode("", help="Directory for the database, secrets, logs; default cwd.").tag(
        config=True
    )
    db_url = Unicode(
        "", help="Database URL: sqlite:///path.sqlite (default <data_dir>/amalthea.sqlite) or "
        "postgresql://user:pw@host/db.",
    ).tag(config=True)  # fmt: skip
    upgrade_db = Bool(False, help="Upgrade an older database schema automatically at start.").tag(
        config=True
    )
    secrets_file = Unicode(
        "", help="JSON file (0600) with the cookie secret and proxy token; default "
        "<data_dir>/amalthea_secrets.json.",
    ).tag(config=True)  # fmt: skip
    authenticator_class = PluginType(
        AUTHENTICATORS, klass=Authenticator, shown_default="local",
        help="Who may log in: a short name (local, dummy, pam, ldap, oidc, ...) or a class.",
    ).tag(config=True)  # fmt: skip
    spawner_class = PluginType(
        SPAWNERS, klass=Spawner, shown_default="local-shared",
        help="Where servers run: local (default as root with pam: each server as its Unix account), "
        "local-shared (default otherwise: as the hub's user, per-user dirs), docker, slurm, ...",
    ).tag(config=True)  # fmt: skip
    proxy_class = PluginType(
        PROXIES, klass=object, shown_default="amalthea",
        help="The proxy: amalthea (our own) or chp (configurable-http-proxy).",
    ).tag(config=True)  # fmt: skip
    cleanup_servers = Bool(
        False, help="Stop all servers when the hub stops (False: they keep running)."
    ).tag(config=True)
    cleanup_proxy = Bool(
        False, help="Stop the proxy when the hub stops (False: it keeps serving users)."
    ).tag(config=True)
    allow_named_servers = Bool(False, help="Let users run more than one server.").tag(config=True)
    named_server_limit_per_user = Integer(0, help="Max named servers per user (0 = no limit).").tag(
        config=True
    )
    cookie_max_age_days = Float(14, help="How long a login lasts.").tag(config=True)
    # ---- RBAC helper's features (behaviour in hub/features.py; also c.Roles/c.SpawnLimits) ----
    load_roles = List(Dict(), help="Roles to define at startup (see c.Roles.load_roles).").tag(
        config=True
    )
    custom_scopes = Dict(help="Custom scopes (see c.Roles.custom_scopes).").tag(config=True)
    extra_user_scopes = List(Unicode(), help="Scopes added to the 'user' role.").tag(config=True)
    services = List(Dict(), help="Services: dicts with name, url, command, api_token...").tag(
        config=True
    )
    active_server_limit = Integer(0, help="Max running+starting servers (0 = no limit).").tag(
        config=True
    )
    concurrent_spawn_limit = Integer(100, help="Max spawns in progress (0 = no limit).").tag(
        config=True
    )
    cookie_secure = Bool(False, help="Send cookies only over HTTPS (set when behind TLS).").tag(
        config=True
    )
    redirect_to_server = Bool(True, help="After login, go to (and start) the user's server.").tag(
        config=True
    )
    default_url = Unicode("", help="Where /hub/ sends logged-in users; '' = their server.").tag(
        config=True
    )
    shutdown_on_logout = Bool(False, help="Stop a user's servers when they log out.").tag(
        config=True
    )
    slow_spawn_timeout = Float(10, help="Seconds POST .../server waits before answering 202.").tag(
        config=True
    )
    slow_stop_timeout = Float(10, help="Seconds DELETE .../server waits before answering 202.").tag(
        config=True
    )
    identity_cache_seconds = Float(
        5, help="How long a token's or session's permissions are cached."
    ).tag(config=True)
    oauth_token_expires_in = Integer(1209600, help="Lifetime of OAuth tokens (seconds).").tag(
        config=True
    )
    token_expires_in_max_seconds = Integer(
        0,
        help="""Longest lifetime (seconds) of a token created via the REST API; 0 = unlimited.
        Requests without ``expires_in`` get this lifetime, longer requests are refused (400).""",
    ).tag(config=True)
    oauth_require_pkce = Bool(False, help="Refuse OAuth clients that do not use PKCE.").tag(
        config=True
    )
    login_attempts_per_minute = Float(
        10, help="Failed logins allowed per minute per IP and per username (after a burst)."
    ).tag(config=True)
    proxy_check_interval = Float(
        10, help="Seconds between checks that the proxy is alive (restarted if the hub owns it)."
    ).tag(config=True)
    last_activity_interval = Float(
        300, help="Seconds between reading activity from the proxy and re-checking its routes."
    ).tag(config=True)
    api_tokens = Dict(
        {}, help="Tokens from config: {token: username}. Tokens must be random (>= 16 chars); "
        "the user is created if missing. Meant for automation and tests.",
    ).tag(config=True)  # fmt: skip
    login_burst = Integer(10, help="Failed logins allowed at once before throttling.").tag(
        config=True
    )
    proxy_networks = List(
        Unicode(), ["127.0.0.0/8", "::1/128"],
        help="Addresses (CIDR) of our proxy. Only requests from these may name the client's "
        "address and scheme (last X-Forwarded-For/-Proto hop); X-Real-Ip is never trusted.",
    ).tag(config=True)  # fmt: skip
    fast_start = Bool(
        True, help="Listen as soon as config is valid and, while the rest of the hub loads, "
        "answer GET /hub/api and GET /hub/api/users/NAME from the SQLite database (the same "
        "answers, for the database as it is at that moment); every other request waits until "
        "the hub is ready. False: listen only once the hub is ready.",
    ).tag(config=True)  # fmt: skip
    profiles = List(
        Dict(), help="Server profiles people choose from on the spawn page or in user_options: "
        "dicts with slug, display_name, allowed_groups, mem_limit, cpu_limit, image, options... "
        "(docs/spawners/profiles.md). Checked at startup against the spawner class.",
    ).tag(config=True)  # fmt: skip

    aliases = {
        "f": "Amalthea.config_file", "config": "Amalthea.config_file",
        "bind-url": "Amalthea.bind_url", "hub-bind-url": "Amalthea.hub_bind_url",
        "db": "Amalthea.db_url", "data-dir": "Amalthea.data_dir",
        "authenticator": "Amalthea.authenticator_class", "spawner": "Amalthea.spawner_class",
        "proxy": "Amalthea.proxy_class", "log-level": "Application.log_level",
    }  # fmt: skip
    flags = {
        "generate-config": ({"Amalthea": {"generate_config": True}}, "Write amalthea_config.py."),
        "debug": ({"Application": {"log_level": 10}}, "Log everything."),
        "upgrade-db": ({"Amalthea": {"upgrade_db": True}}, "Upgrade the database at start."),
    }

    @default("authenticator_class")
    def _default_authenticator(self) -> type:
        return load(AUTHENTICATORS, "local")

    @default("spawner_class")
    def _default_spawner_class(self) -> type:
        return load(SPAWNERS, _default_spawner(self.authenticator_class))

    @default("proxy_class")
    def _default_proxy_class(self) -> type:
        return load(PROXIES, "amalthea")

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    @default("log_format")
    def _log_format(self) -> str:
        return "%(asctime)s %(levelname).1s %(name)s: %(message)s"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir or os.getcwd()).resolve()

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_path / 'amalthea.sqlite'}"

    def emit_description(self) -> Any:
        yield from super().emit_description()
        for title, group in (("Authenticators", AUTHENTICATORS), ("Spawners", SPAWNERS),
                             ("Proxies", PROXIES)):  # fmt: skip
            yield f"{title} installed: {', '.join(sorted(installed(group)))}"
        yield ""
        yield "Subcommands: amalthea upgrade-db   (migrate the database schema and exit)"
        yield ""

    # ---- build --------------------------------------------------------------------------
    async def build(self) -> HubContext:
        from amalthea.hub.lifecycle import ServerManager
        from amalthea.hub.lifecycle.env import HubURLs
        from amalthea.hub.oauth import OAuthProvider
        from amalthea.hub.security.identity import IdentityResolver
        from amalthea.hub.security.ratelimit import LoginThrottle
        from amalthea.hub.security.secrets_file import load_or_create
        from amalthea.hub.store import queries
        from amalthea.hub.store.accounts import SQLAccountStore
        from amalthea.hub.store.db import Database
        from amalthea.hub.store.migrate import prepare
        from amalthea.hub.web.templates import PageTemplates

        data = self.data_path
        data.mkdir(parents=True, exist_ok=True)
        secrets = load_or_create(Path(self.secrets_file or data / "amalthea_secrets.json"))
        await asyncio.to_thread(prepare, self.database_url, self.upgrade_db)
        db = Database(self.database_url)
        async with db.session() as s:
            await queries.ensure_hub_client(s)
            await s.commit()
        accounts = SQLAccountStore(db)
        settings = HubSettings(
            base_url=self.base_url, public_url=self.public_url,
            cookie_max_age_days=self.cookie_max_age_days, cookie_secure=self.cookie_secure,
            allow_named_servers=self.allow_named_servers,
            named_server_limit_per_user=self.named_server_limit_per_user,
            redirect_to_server=self.redirect_to_server, default_url=self.default_url,
            shutdown_on_logout=self.shutdown_on_logout,
            token_expires_in_max_seconds=self.token_expires_in_max_seconds,
        )  # fmt: skip
        auth_ctx = AuthContext(data_dir=str(data), hub_prefix=settings.hub_prefix,
                               public_url=self.public_url or self.bind_url, store=accounts)  # fmt: skip
        authenticator = self.authenticator_class(context=auth_ctx, config=self.config, log=self.log)
        await authenticator.startup()
        await self._load_config_tokens(db, authenticator)
        self._setup_mfa(accounts)
        hub_target = _origin(self.hub_bind_url)
        api_url = _origin(self.hub_connect_url or self.hub_bind_url) + settings.hub_prefix + "api"
        proxy = self.proxy_class(
            public_url=self.bind_url, hub_url=hub_target, data_dir=str(data),
            token=secrets.proxy_token, config=self.config, log=self.log,
        )  # fmt: skip
        spawner_cls = self.spawner_class

        def make_spawner(ctx: SpawnContext) -> Spawner:
            return spawner_cls(ctx, config=self.config, log=self.log)  # type: ignore[no-any-return]

        servers = ServerManager(
            db, proxy, make_spawner, HubURLs(self.base_url, api_url, self.public_url),
            str(data), hub_target, self.slow_spawn_timeout, self.slow_stop_timeout,
        )  # fmt: skip
        templates = PageTemplates(HERE / "templates")
        hub = HubContext(
            settings=settings, db=db, cookie_secret=secrets.cookie_secret,
            authenticator=authenticator, identities=IdentityResolver(db, self.identity_cache_seconds),
            servers=servers, oauth=OAuthProvider(db, self.oauth_token_expires_in,
                                                 require_pkce=self.oauth_require_pkce),
            throttle=LoginThrottle(self.login_burst, self.login_attempts_per_minute),
            templates=templates, accounts=accounts, spawner_class=spawner_cls, proxy=proxy,
            version=__version__,
        )  # fmt: skip

        async def complete_login(handler: Any, result: Any, next_url: str = "") -> None:
            from amalthea.hub.web.pages.login import finish_login

            await finish_login(handler, result, next_url)

        auth_ctx.complete_login = complete_login
        from amalthea.hub import features, logins

        await logins.setup(hub, self.config)  # auth_state keys, refresh, spawn env, MFA policy

        await features.setup(self, hub, api_url)
        from amalthea.hub.lifecycle import profiles_glue, reporting

        profiles_glue.install(hub, self.profiles, spawner_cls)  # spawn form, user_options checks
        reporting.install(servers)  # report_url for spawners with report_address (batch)
        return hub

    async def _load_config_tokens(self, db: Database, authenticator: Authenticator) -> None:
        from sqlalchemy import select

        from amalthea.hub.security.tokens import token_prefix
        from amalthea.hub.store import queries
        from amalthea.hub.store.models import APIToken

        for name in authenticator.admin_users:
            async with db.session() as s:
                await queries.get_or_create_user(s, name, admin=True)
                await s.commit()
        for token, name in self.api_tokens.items():
            if len(token) < 16:
                raise ValueError(
                    f"c.Amalthea.api_tokens: the token for {name!r} is too short ({len(token)} "
                    "characters); use at least 16 random characters."
                )
            async with db.session() as s:
                admin = True if name in authenticator.admin_users else None
                user = await queries.get_or_create_user(s, name, admin)
                hashed = hash_token(token)
                if (await s.execute(select(APIToken.id).where(APIToken.hashed == hashed))).first():
                    await s.commit()
                    continue
                s.add(APIToken(user_id=user.id, hashed=hashed, prefix=token_prefix(token),
                               note="from config", scopes=["inherit"]))  # fmt: skip
                await s.commit()

    def _setup_mfa(self, accounts: SQLAccountStore) -> None:
        if not os.environ.get("AMALTHEA_CRYPT_KEY"):
            return
        try:
            from amalthea.auth.mfa import MFAManager
        except ImportError:
            return
        accounts.mfa = MFAManager(accounts, config=self.config, log=self.log)

    def web_app(self, hub: HubContext) -> web.Application:
        from tornado import web

        from amalthea.hub.web.api import api_handlers
        from amalthea.hub.web.pages import page_handlers
        from amalthea.hub.web.pages.errors import NotFoundHandler
        from amalthea.hub.web.pages.user import AddSlashHandler, ToHubHandler

        prefix = hub.settings.hub_prefix
        routes: list[Any] = [
            (prefix + r"static/(.*)", web.StaticFileHandler, {"path": str(HERE / "static")}),
        ]
        routes += [(prefix + p.removeprefix("/"), h, *rest)
                   for p, h, *rest in hub.authenticator.login_handlers()]  # fmt: skip
        routes += api_handlers(prefix + "api")
        routes += page_handlers(prefix)
        routes += [
            (prefix + r".*", NotFoundHandler),
            (self.base_url + r"(?:user|services)/[^/]+", AddSlashHandler),
            (self.base_url + r"(.*)", ToHubHandler),
        ]
        return web.Application(
            routes, hub=hub, cookie_secret=hub.cookie_secret, xsrf_cookies=False,
            log_function=_log_request, static_hash_cache=True, compress_response=False,
        )  # fmt: skip

    # ---- run ----------------------------------------------------------------------------
    async def serve(self, started: Callable[[], None] | None = None) -> None:
        """Build, listen, serve until a signal; ``started()`` once the hub answers requests.

        With ``fast_start`` the port is bound first, behind a gate that answers what the early
        API can and holds the rest (``web/gate.py``), and the hub's modules are imported in a
        worker thread meanwhile; the gate hands held requests over once the app is built.
        """
        from amalthea.hub.security.forwarded import TrustedForwarding, parse_networks

        networks = parse_networks(self.proxy_networks)  # a bad entry fails before listening
        gate = server = None
        if self.fast_start:
            gate = self._gate()
            server = self._listen(gate)
        try:
            if gate is not None:
                await _import_hub_in_thread()
            hub = await self.build()
            servers = hub.servers
            await servers.reconcile()
            await self._first_run(hub)
            app = self.web_app(hub)
        except BaseException as e:
            if gate is not None:
                gate.fail(str(e) or type(e).__name__)
                if isinstance(e, Exception):
                    await asyncio.sleep(0)  # let the 503s go out before the process exits
            raise
        # client address only from our proxy's headers (see hub/security/forwarded.py)
        target = TrustedForwarding(app, networks)
        if gate is None or server is None:
            server = self._listen(target)
        else:
            server.request_callback = target  # from now on the gate costs nothing
            gate.open(target)
        await hub.proxy.start()
        await servers.sync_routes()
        from amalthea.hub import features

        await features.start(hub)
        servers.start_polling()
        from amalthea.hub.lifecycle.housekeeping import Housekeeper

        housekeeper = Housekeeper(servers, self.proxy_check_interval, self.last_activity_interval)
        housekeeper.start()
        self.log.info("Amalthea %s is running at %s%s", __version__, self.bind_url.rstrip("/"),
                      hub.settings.hub_prefix)  # fmt: skip
        if started is not None:
            started()
        stop = asyncio.Event()
        keep = {"servers": not self.cleanup_servers, "proxy": not self.cleanup_proxy}
        loop = asyncio.get_running_loop()

        def on_signal(sig: int) -> None:
            if sig == signal.SIGHUP:
                keep.update(servers=True, proxy=True)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal, sig)
        hub.shutdown = stop.set
        await stop.wait()
        self.log.info("Stopping the hub (servers %s, proxy %s)",
                      "kept running" if keep["servers"] else "stopped",
                      "kept running" if keep["proxy"] else "stopped")  # fmt: skip
        server.stop()
        await features.stop(hub)
        await housekeeper.stop()
        await servers.shutdown(stop_servers=not keep["servers"])
        if not keep["proxy"]:
            await hub.proxy.stop()
        await hub.identities.close()
        await hub.db.dispose()

    def _listen(self, handler: Any) -> HTTPServer:
        parts = urlsplit(self.hub_bind_url)
        server = HTTPServer(handler)
        server.listen(parts.port or 8081, parts.hostname or "127.0.0.1", reuse_port=False)
        return server

    def _gate(self) -> Gate:
        """The request handler until the hub is ready, with the early API for SQLite."""
        from amalthea.hub.store.early_reads import open_reader, sqlite_path
        from amalthea.hub.web.early_api import EarlyAPI, early_config
        from amalthea.hub.web.gate import Gate

        path = sqlite_path(self.database_url)
        reader = None if path is None else open_reader(path)
        return Gate(EarlyAPI(early_config(self), reader), self.base_url + "hub/")

    async def _first_run(self, hub: HubContext) -> None:
        from sqlalchemy import func, select

        from amalthea.auth.local import LocalAuthenticator
        from amalthea.hub.store.models import LocalAccount, User

        if not isinstance(hub.authenticator, LocalAuthenticator):
            return
        async with hub.db.session() as s:  # an admin who can actually log in with a password
            admins = (
                await s.execute(
                    select(func.count())
                    .select_from(User)
                    .join(LocalAccount, LocalAccount.username == User.name)
                    .where(User.admin)
                )
            ).scalar()
        if admins:
            return
        code = new_code()
        hub.setup_code_hash = hash_token(code)
        link = f"{(self.public_url or self.bind_url).rstrip('/')}{hub.settings.hub_prefix}setup?code={code}"
        banner = (f"\n  No administrator yet. Open this one-time link to create one:\n\n"
                  f"    {link}\n")  # fmt: skip
        print(banner, file=sys.stderr, flush=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


_access_log = logging.getLogger("amalthea.access")


def _log_request(handler: web.RequestHandler) -> None:
    status = handler.get_status()
    # 2xx/3xx at debug: logging every request costs more CPU than serving many of them
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if _access_log.isEnabledFor(level):
        req = handler.request
        _access_log.log(level, "%d %s %s %.1fms", status, req.method, redact_uri(req.uri or ""),
                        1000 * req.request_time())  # fmt: skip
