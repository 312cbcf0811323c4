"""The scope vocabulary: every scope JupyterHub 6.1 knows, what it means and what it implies.

Data only (jupyterhub-protocol.md §4.2). ``scopes.py`` does the algebra over it. Custom scopes
(``c.Roles.custom_scopes``) extend the table at startup through :func:`define_custom_scopes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUILTIN",
    "CUSTOM_SCOPE_RE",
    "ScopeDef",
    "ScopeError",
    "custom_scopes",
    "define_custom_scopes",
    "lookup",
]


class ScopeError(ValueError):
    """A scope string that is not in the vocabulary or has a malformed filter.

    The message names the offending scope; the web layer maps it to 400.
    """


@dataclass(frozen=True)
class ScopeDef:
    description: str
    subscopes: tuple[str, ...] = ()


def _d(description: str, *subscopes: str) -> ScopeDef:
    return ScopeDef(description, subscopes)


BUILTIN: dict[str, ScopeDef] = {
    "(no_scope)": _d("Identify the owner of the requesting entity."),
    "self": _d("Your own resources (expanded to the token owner's user scopes)."),
    "inherit": _d("Everything the token's owner can do."),
    "admin-ui": _d("Access the admin page."),
    "admin:users": _d(
        "Read, modify, create and delete users and their authentication state.",
        "admin:auth_state",
        "users",
        "read:roles:users",
        "delete:users",
    ),
    "admin:auth_state": _d("Read a user's authentication state."),
    "users": _d("Read and update user models.", "read:users", "list:users", "users:activity"),
    "delete:users": _d("Delete users."),
    "list:users": _d("List users, including at least their names.", "read:users:name"),
    "read:users": _d(
        "Read user models (including the URL of the default server if it is running).",
        "read:users:name",
        "read:users:groups",
        "read:users:activity",
    ),
    "read:users:name": _d("Read names of users."),
    "read:users:groups": _d("Read users' group membership."),
    "read:users:activity": _d("Read time of last user activity."),
    "read:roles": _d(
        "Read role assignments.", "read:roles:users", "read:roles:services", "read:roles:groups"
    ),
    "read:roles:users": _d("Read user role assignments."),
    "read:roles:services": _d("Read service role assignments."),
    "read:roles:groups": _d("Read group role assignments."),
    "users:activity": _d("Update time of last user activity.", "read:users:activity"),
    "admin:servers": _d(
        "Read, start, stop, create and delete user servers and their state.",
        "admin:server_state",
        "servers",
    ),
    "admin:server_state": _d("Read and write users' server state."),
    "servers": _d(
        "Start and stop user servers.", "read:servers", "start:servers", "delete:servers"
    ),
    "read:servers": _d(
        "Read users' names and their server models (without the server state).",
        "read:users:name",
    ),
    "start:servers": _d("Start, create and edit user servers."),
    "delete:servers": _d("Stop and delete user servers."),
    "tokens": _d("Read, write, create and delete user tokens.", "read:tokens"),
    "read:tokens": _d("Read user tokens."),
    "admin:groups": _d(
        "Read and write group information, create and delete groups.",
        "groups",
        "read:roles:groups",
        "delete:groups",
    ),
    "groups": _d(
        "Read and write group information, including adding/removing users.",
        "read:groups",
        "list:groups",
    ),
    "list:groups": _d("List groups, including at least their names.", "read:groups:name"),
    "read:groups": _d("Read group models.", "read:groups:name"),
    "read:groups:name": _d("Read group names."),
    "delete:groups": _d("Delete groups."),
    "admin:services": _d(
        "Create, read, update, delete services, not including services defined from config.",
        "list:services",
        "read:services",
        "read:roles:services",
    ),
    "list:services": _d("List services, including at least their names.", "read:services:name"),
    "read:services": _d("Read service models.", "read:services:name"),
    "read:services:name": _d("Read service names."),
    "read:hub": _d("Read detailed information about the Hub."),
    "access:servers": _d("Access user servers via API or browser."),
    "access:services": _d("Access services via API or browser."),
    "users:shares": _d("Read and revoke a user's access to shared servers.", "read:users:shares"),
    "read:users:shares": _d("Read servers shared with a user."),
    "groups:shares": _d(
        "Read and revoke a group's access to shared servers.", "read:groups:shares"
    ),
    "read:groups:shares": _d("Read servers shared with a group."),
    "read:shares": _d("Read information about shared access to servers."),
    "shares": _d(
        "Manage access to shared servers.",
        "access:servers",
        "read:shares",
        "users:shares",
        "groups:shares",
    ),
    "proxy": _d("Read information about the proxy's routing table, sync the Hub with the proxy."),
    "shutdown": _d("Shutdown the hub."),
    "read:metrics": _d("Read prometheus metrics."),
}

#: The base scopes ``self`` stands for; each is expanded with all subscopes and ``!user=<owner>``.
SELF_SCOPES = (
    "read:users",
    "users:shares",
    "read:shares",
    "users:activity",
    "servers",
    "tokens",
    "access:servers",
)

#: Scopes about *user models*: a ``!server=`` filter does not carry over to them, because a
#: server filter says nothing about which user models may be read (``read:servers!server=a/x``
#: must not grant ``read:users:name!server=a/x``, protocol §4.2).
USER_MODEL_SCOPES = frozenset(
    {
        "admin:users",
        "admin:auth_state",
        "users",
        "delete:users",
        "list:users",
        "read:users",
        "read:users:name",
        "read:users:groups",
        "read:users:activity",
        "users:activity",
        "tokens",
        "read:tokens",
        "read:roles:users",
    }
)

CUSTOM_SCOPE_RE = re.compile(r"^custom:[a-z0-9][a-z0-9_\-*:]+[a-z0-9_*]$")

_custom: dict[str, ScopeDef] = {}


def define_custom_scopes(spec: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the custom scope table (``{"custom:x": {"description": ..., "subscopes": [...]}}``).

    Raises ScopeError naming the bad entry; subscopes of custom scopes must be custom scopes
    defined in the same table (a custom scope cannot grant built-in permissions).
    """
    table: dict[str, ScopeDef] = {}
    for name, entry in spec.items():
        if not CUSTOM_SCOPE_RE.match(name):
            raise ScopeError(
                f"Invalid custom scope name {name!r}: must match {CUSTOM_SCOPE_RE.pattern}"
            )
        if not isinstance(entry, Mapping) or not isinstance(entry.get("description", ""), str):
            raise ScopeError(f"Custom scope {name!r} must be a dict with a 'description' string")
        subs = tuple(entry.get("subscopes") or ())
        table[name] = ScopeDef(str(entry.get("description", "")), subs)
    for name, scope_def in table.items():
        for sub in scope_def.subscopes:
            if sub not in table:
                raise ScopeError(
                    f"Custom scope {name!r} has subscope {sub!r}, which is not a custom scope "
                    "defined in custom_scopes"
                )
    _custom.clear()
    _custom.update(table)


def custom_scopes() -> dict[str, ScopeDef]:
    return dict(_custom)


def lookup(base: str) -> ScopeDef | None:
    """The definition of a base scope name (no filter), or None if unknown."""
    found = BUILTIN.get(base)
    return found if found is not None else _custom.get(base)
