"""The two REST answers a hub gives while it is still starting: ``GET {hub}api`` and
``GET {hub}api/users/NAME``.

Why: a restart is mostly importing SQLAlchemy and building the hub (issue 3: restart with 10,000
users <= 1 s). Clients (dashboards, the benchmark, ``jupyterhub`` health checks) first probe
the version and read a user; this module answers those from the SQLite file with the standard
library while the rest of the hub loads (``web/gate.py`` routes requests here).

Invariant: an answer here is exactly the full hub's, status line and body, for the same
database; otherwise :meth:`EarlyAPI.answer` returns None and the request waits for the full hub.
The rules are shared, not copied: scopes come from ``rbac/effective.py`` and ``rbac/scopes.py``,
the body from ``web/user_model.py``, token hashing from ``security/tokens.py``. Only the reads
are separate (``store/early_reads.py``). ``tests/hub/test_early_api.py`` compares both.

What waits for the full hub (None): anything but those two GETs, HEAD/OPTIONS, conditional
requests, login cookies (sessions, XSRF), service tokens, tokens and admins named in config (the
start writes them), a user's auth_state when the caller may read it and there is one, config that
rewrites roles or scopes at start (``load_roles``, ``custom_scopes``), an unexpected database
(older schema, locked, not SQLite), and any error.

Consistency: answers reflect the database at that moment, before the start's reconcile has
checked which servers still run; a server shown running may be found gone (or a pending one
started) a few hundred milliseconds later, like any read racing a state change.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

from amalthea import JUPYTERHUB_COMPAT_VERSION
from amalthea.hub import rbac
from amalthea.hub.clock import utcnow
from amalthea.hub.rbac import effective as E
from amalthea.hub.security.tokens import hash_token, plausible
from amalthea.hub.store.early_reads import EarlyReader
from amalthea.hub.web import json_out
from amalthea.hub.web.user_model import ACTIVE, ServerInfo, Urls, UserRow, UserView

__all__ = ["Answer", "EarlyAPI", "EarlyConfig", "early_config"]

log = logging.getLogger("amalthea.web")

#: the full hub's Authorization header syntax (web/base.py)
_AUTH_HEADER = re.compile(r"^(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)
LOGIN_COOKIE = "jupyterhub-hub-login"
READ_USER_SCOPES = (
    "read:users", "read:users:name", "read:servers", "read:users:groups",
    "read:users:activity", "read:roles:users",
)  # fmt: skip


class _Wait(Exception):
    """This request is for the full hub."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EarlyConfig:
    """What the early API needs from config, read before anything is built."""

    base_url: str
    public_url: str
    #: False: only ``GET {hub}api`` is answered (config rewrites roles/scopes at start)
    users: bool = True
    #: ``c.Authenticator.admin_users``: the start makes them admins
    admin_users: Collection[str] = ()
    #: hashes of tokens written by the start (``api_tokens``, services' ``api_token``)
    config_token_hashes: Collection[str] = ()
    #: users the start creates (``api_tokens`` owners)
    config_users: Collection[str] = ()
    extra_user_scopes: tuple[str, ...] = ()


def _configured(config: Any, section: str, name: str, default: Any = None) -> Any:
    return config[section][name] if section in config and name in config[section] else default


def early_config(app: Any) -> EarlyConfig:
    """What the early API needs from the ``Amalthea`` application's config (read-only)."""
    config = app.config

    def setting(name: str) -> Any:  # as hub/features.py: c.Amalthea.<name> wins, else c.Roles.
        value = getattr(app, name) if _configured(config, "Amalthea", name) is not None else None
        return value or _configured(config, "Roles", name)

    admins: Any = ()
    for cls in reversed(app.authenticator_class.mro()):  # traitlets: subclass sections win
        admins = _configured(config, cls.__name__, "admin_users", admins)
    tokens = {str(t): str(u) for t, u in app.api_tokens.items()}
    for service in app.services:
        if isinstance(service, dict) and service.get("api_token"):
            tokens[str(service["api_token"])] = ""
    return EarlyConfig(
        base_url=app.base_url, public_url=app.public_url,
        users=not setting("load_roles") and not setting("custom_scopes"),
        admin_users=frozenset(admins or ()),
        config_token_hashes=frozenset(map(hash_token, tokens)),
        config_users=frozenset(u for u in tokens.values() if u),
        extra_user_scopes=tuple(setting("extra_user_scopes") or ()),
    )  # fmt: skip


def _error(status: int, message: str) -> Answer:
    # the full hub's API error body is the standard library's encoding (web/base.py)
    return Answer(status, message, json.dumps({"status": status, "message": message}).encode())


class EarlyAPI:
    def __init__(self, config: EarlyConfig, reader: EarlyReader | None) -> None:
        self.config = config
        self.reader = reader
        prefix = config.base_url + "hub/api"
        # the full hub's route patterns (web/api/info.py, users.py), matched as Tornado does
        self._root = re.compile(re.escape(prefix) + r"/?$")
        self._user = re.compile(re.escape(prefix) + r"/users/([^/]+)$")
        self.urls = Urls(config.base_url, config.public_url.rstrip("/"))
        user_role = [*E.DEFAULT_ROLES["user"]["scopes"], *config.extra_user_scopes]
        #: the built-in roles as this start writes them (rbac/roles.py apply_roles)
        self.builtin = {name: tuple(r["scopes"]) for name, r in E.DEFAULT_ROLES.items()}
        self.builtin["user"] = tuple(dict.fromkeys(user_role))

    def close(self) -> None:
        """The full hub answers from now on."""
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def answer(self, method: str, uri: str, headers: Mapping[str, str]) -> Answer | None:
        """The full hub's answer to this request, or None if it must wait for the full hub."""
        if method != "GET" or "If-None-Match" in headers:
            return None
        path, _, query = uri.partition("?")
        if self._root.match(path):
            return Answer(200, "OK", json_out.dumps({"version": JUPYTERHUB_COMPAT_VERSION}),
                          {"Access-Control-Allow-Origin": "*"})  # fmt: skip
        m = self._user.match(path)
        if m is None or not self.config.users or self.reader is None:
            return None
        try:
            name = unquote_to_bytes(m.group(1)).decode()
            with self.reader.snapshot() as db:
                return self._user_model(db, name, query, headers)
        except _Wait:
            return None
        except Exception:  # anything unexpected: the full hub answers instead
            log.debug("early API: %s left to the full hub", path, exc_info=True)
            return None

    # ---- identity: web/base.py prepare() + security/identity.py + rbac/resolve.py ----------
    def _held(self, db: EarlyReader, headers: Mapping[str, str]) -> frozenset[str] | None:
        m = _AUTH_HEADER.match(headers.get("Authorization", ""))
        if m is None:
            if LOGIN_COOKIE in headers.get("Cookie", ""):
                raise _Wait  # sessions, XSRF and cookie clearing: the full hub's
            return None
        token = m.group(1)
        if not plausible(token):
            return None
        hashed = hash_token(token)
        if hashed in self.config.config_token_hashes:
            raise _Wait
        row = db.token(hashed)
        if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
            return None
        if row.service_id is not None or row.user_id is None:
            raise _Wait
        user = db.user_by_id(row.user_id)
        if user is None:
            return None
        uid, name, admin = user
        if name in self.config.admin_users and not admin:
            raise _Wait
        groups = db.groups(uid)
        owner_subject = rbac.Subject("user", name, tuple(g for _, g in groups))
        owner = rbac.expand(self._user_raw(db, uid, admin, groups), owner_subject)
        desc = None
        if E.needs_client_description(row.client_id):
            desc = db.client_description(row.client_id)
        subject = E.token_subject(row.note, row.client_id, desc, owner_subject)
        mine = E.token_own_scopes(row.scopes, row.client_id, desc, subject)
        if mine is None:
            scopes = owner
        else:
            names = E.groups_needed(mine, owner)
            scopes = rbac.intersect(
                mine, owner, None if names is None else db.groups_of_users(names)
            )
        return scopes | rbac.identify_scopes(rbac.Subject("user", name))

    def _user_raw(
        self, db: EarlyReader, uid: int, admin: bool, groups: list[tuple[int, str]]
    ) -> list[str]:
        roles = [(n, list(self.builtin[n]) if n in self.builtin else s) for n, s in db.roles(uid)]
        group_ids = [gid for gid, _ in groups]
        group_roles = [
            list(self.builtin[n]) if n in self.builtin else s for n, s in db.group_roles(group_ids)
        ]
        holds_admin = E.holds_admin(admin, (n for n, _ in roles))
        return E.user_raw_scopes(
            self.builtin["user"], self.builtin["admin"] if holds_admin else (), roles, group_roles,
            db.shares(uid, group_ids, utcnow()),
        )  # fmt: skip

    # ---- GET /users/NAME: web/api/users.py UserHandler.get ------------------------------
    def _can(self, db: EarlyReader, held: frozenset[str], scope: str, user: str) -> bool:
        if rbac.covers(held, scope, user=user):
            return True
        if any(s.startswith(f"{scope}!group=") for s in held):
            row = db.user(user)
            groups = [] if row is None else db.group_names(row[0])
            return rbac.covers(held, scope, user=user, user_groups=groups)
        return False

    def _user_model(
        self, db: EarlyReader, name: str, query: str, headers: Mapping[str, str]
    ) -> Answer:
        held = self._held(db, headers)
        if held is None:
            return _error(403, "Missing or invalid credentials.")
        if name in self.config.admin_users or name in self.config.config_users:
            raise _Wait  # the start may create this user or make them admin
        if not any(self._can(db, held, s, name) for s in READ_USER_SCOPES):
            if any(rbac.any_filter(held, s) for s in READ_USER_SCOPES):
                return _error(404, "No access to resources or resources not found")
            return _error(403, "Action is not authorized with current scopes; requires any of "
                          f"[{', '.join(READ_USER_SCOPES)}]")  # fmt: skip
        include_stopped = _flag(query, "include_stopped_servers")
        with_state = self._can(db, held, "admin:auth_state", name)
        row = db.user(name)
        if row is None:
            return _error(404, f"No such user {name[:80]}")
        uid, uname, admin, created, last_activity, user_info, blob = row
        if with_state and blob:
            raise _Wait  # decrypting auth_state needs the full hub's keys
        user = UserRow(uid, uname, admin, created, last_activity, user_info,
                       db.group_names(uid), [], {})  # fmt: skip
        roles = {r for r, _ in db.roles(uid)}
        user.roles = sorted(roles.union(("user", "admin") if admin else ("user",)))
        for sname, display, state, started, last, options, sstate in db.servers(uid):
            if include_stopped or state in ACTIVE:
                user.servers[sname] = ServerInfo(
                    sname, display, state, started, last, options, sstate
                )
        model = UserView(held).model(self.urls, user)
        if with_state:
            model["auth_state"] = None
        return Answer(200, "OK", json_out.dumps(model))


def _flag(query: str, name: str) -> bool:
    """``RestHandler.flag``: present and not 0/false/no/off (Tornado takes the last value)."""
    values = parse_qs(query, keep_blank_values=True).get(name)
    if not values:
        return False
    return values[-1].strip().lower() not in ("0", "false", "no", "off")
