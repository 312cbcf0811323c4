"""The JSON model of a user and of a server (protocol §5.1), from plain rows: no SQL, no HTTP.

Models are *vertically filtered*: a key appears only if the caller's scopes reveal it for that
object; :class:`UserView` decides the visible keys once per (scope set, object) with
precomputed :class:`~amalthea.hub.rbac.Filters`. The REST handlers (``web/api/views.py`` reads
the rows with SQLAlchemy) and the early API of a starting hub (``web/early_api.py`` reads them
with the standard library's sqlite3) build their bodies here, so both answer the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from amalthea.hub import rbac
from amalthea.hub.clock import isoformat

__all__ = ["ACTIVE", "ServerInfo", "Urls", "UserRow", "UserView", "server_model"]

ACTIVE = ("pending", "running", "stopping")


def q(name: str) -> str:
    return quote(name, safe="@~")


@dataclass(frozen=True)
class Urls:
    base_url: str = "/"
    public_url: str = ""  # "https://hub.example" (no trailing slash) or ""

    def server(self, user: str, server: str) -> str:
        return f"{self.base_url}user/{q(user)}/" + (f"{q(server)}/" if server else "")

    def progress(self, user: str, server: str) -> str:
        tail = f"servers/{q(server)}/progress" if server else "server/progress"
        return f"{self.base_url}hub/api/users/{q(user)}/{tail}"

    def full(self, path: str) -> str | None:
        return self.public_url + path if self.public_url else None


@dataclass
class ServerInfo:
    """One server row plus live state from the lifecycle manager."""

    name: str
    display_name: str
    state: str  # stopped / pending / running / stopping / failed
    started: Any
    last_activity: Any
    user_options: dict[str, Any] | None
    spawner_state: dict[str, Any] | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def pending(self) -> str | None:
        return {"pending": "spawn", "stopping": "stop"}.get(self.state)


@dataclass
class UserRow:
    id: int
    name: str
    admin: bool
    created: Any
    last_activity: Any
    user_info: dict[str, Any] | None
    groups: list[str]
    roles: list[str]
    servers: dict[str, ServerInfo]


def server_model(urls: Urls, owner: str, s: ServerInfo, with_state: bool = False) -> dict[str, Any]:
    url = urls.server(owner, s.name)
    progress = urls.progress(owner, s.name)
    model: dict[str, Any] = {
        "name": s.name,
        "display_name": s.display_name or s.name,
        "full_name": f"{owner}/{s.name}",
        "last_activity": isoformat(s.last_activity),
        "started": isoformat(s.started) if s.active else None,
        "pending": s.pending,
        "ready": s.state == "running",
        "stopped": not s.active,
        "url": url,
        "user_options": s.user_options or {},
        "progress_url": progress,
        "full_url": urls.full(url),
        "full_progress_url": urls.full(progress),
    }
    if with_state:
        model["state"] = s.spawner_state or {}
    return model


class UserView:
    """Decides, once per request, which user-model keys the caller may see per user."""

    def __init__(self, held: frozenset[str]) -> None:
        self.held = held
        f = rbac.filters
        self.read_users = f(held, "read:users")
        self.read_name = f(held, "read:users:name")
        self.read_roles = f(held, "read:roles:users")
        self.read_groups = f(held, "read:users:groups")
        self.read_activity = f(held, "read:users:activity")
        self.read_servers = f(held, "read:servers")
        self.server_state = f(held, "admin:server_state")
        self.auth_state = f(held, "admin:auth_state")
        # the common admin case: every key of every user visible, no per-user checks at all
        self.everything = all(x is not None and x.unfiltered
                              for x in (self.read_users, self.read_roles, self.read_servers))  # fmt: skip
        self.all_state = self.server_state is not None and self.server_state.unfiltered

    @staticmethod
    def _ok(flt: rbac.Filters | None, user: str, groups: Iterable[str]) -> bool:
        return flt is not None and flt.allows_user(user, groups)

    def _server_ok(
        self, flt: rbac.Filters | None, user: str, server: str, groups: list[str]
    ) -> bool:
        if flt is None:
            return False
        return flt.allows_user(user, groups) or f"{user}/{server}" in flt.servers

    def can_see(self, user: str, groups: list[str]) -> bool:
        for flt in (self.read_users, self.read_name, self.read_roles, self.read_groups,
                    self.read_activity):  # fmt: skip
            if self._ok(flt, user, groups):
                return True
        return self.read_servers is not None and (
            self.read_servers.allows_user(user, groups)
            or any(s.startswith(f"{user}/") for s in self.read_servers.servers)
        )

    def model(self, urls: Urls, u: UserRow) -> dict[str, Any]:
        if self.everything:
            return self._full_model(urls, u)
        g = u.groups
        full = self._ok(self.read_users, u.name, g)
        model: dict[str, Any] = {"kind": "user", "name": u.name}
        if full or self._ok(self.read_name, u.name, g) or self._ok(self.read_roles, u.name, g):
            model["admin"] = u.admin
        if full or self._ok(self.read_name, u.name, g):
            model["user_info"] = u.user_info
        if full or self._ok(self.read_roles, u.name, g):
            model["roles"] = u.roles
        if full or self._ok(self.read_groups, u.name, g):
            model["groups"] = u.groups
        if full:
            default = u.servers.get("")
            model["server"] = (
                urls.server(u.name, "") if default and default.state == "running" else None
            )
            model["pending"] = default.pending if default else None
            model["created"] = isoformat(u.created)
        if full or self._ok(self.read_activity, u.name, g):
            model["last_activity"] = isoformat(u.last_activity)
        if self.read_servers is not None:
            servers = {}
            for name, s in u.servers.items():
                if self._server_ok(self.read_servers, u.name, name, g):
                    state = self._server_ok(self.server_state, u.name, name, g)
                    servers[name] = server_model(urls, u.name, s, with_state=state)
            if servers or self.read_servers.allows_user(u.name, g):
                model["servers"] = servers
        return model

    def _full_model(self, urls: Urls, u: UserRow) -> dict[str, Any]:
        default = u.servers.get("")
        return {
            "kind": "user", "name": u.name, "admin": u.admin, "user_info": u.user_info,
            "roles": u.roles, "groups": u.groups,
            "server": urls.server(u.name, "") if default and default.state == "running" else None,
            "pending": default.pending if default else None,
            "created": isoformat(u.created), "last_activity": isoformat(u.last_activity),
            "servers": {name: server_model(urls, u.name, s, with_state=self.all_state)
                        for name, s in u.servers.items()},
        }  # fmt: skip
