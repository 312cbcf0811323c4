"""A user's and a token's effective scopes, computed from facts already read (no SQL, no I/O).

Two readers gather the facts: ``rbac/resolve.py`` with SQLAlchemy (the running hub) and
``web/early_api.py`` with the standard library's sqlite3 (a hub still starting, before
SQLAlchemy is imported). Both compute the result here, so they cannot disagree on the rules:

- a user holds the ``user`` role's scopes, the ``admin`` role's if flagged admin or assigned
  ``admin``, the scopes of their other roles and of their groups' roles, and of unexpired shares
  granted to them or their groups;
- a token holds (its own expanded scopes + the access scope of the OAuth client that issued it +
  the identify scopes) ∩ its owner's; ``inherit`` means exactly the owner's.

The built-in roles are defined here too (``roles.py`` writes them to the database at start).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote

from amalthea.hub.rbac import scopes as S

__all__ = [
    "ADMIN_SCOPES",
    "DEFAULT_ROLES",
    "client_access_scopes",
    "groups_needed",
    "holds_admin",
    "needs_client_description",
    "server_from_base_url",
    "token_own_scopes",
    "token_subject",
    "user_raw_scopes",
]

ADMIN_SCOPES = [
    "admin-ui", "admin:users", "admin:servers", "admin:services", "tokens", "admin:groups",
    "list:services", "read:services", "read:hub", "proxy", "shutdown", "access:services",
    "access:servers", "read:roles", "read:metrics", "shares",
]  # fmt: skip

DEFAULT_ROLES: dict[str, dict[str, Any]] = {
    "user": {"description": "Standard user privileges", "scopes": ["self"]},
    "admin": {"description": "Elevated privileges (can do anything)", "scopes": ADMIN_SCOPES},
    "server": {
        "description": "Post activity only",
        "scopes": ["users:activity!user", "access:servers!server"],
    },
    "token": {"description": "Token with same permissions as its owner", "scopes": ["inherit"]},
}


def server_from_base_url(text: str) -> str | None:
    """``Server at /user/alice/gpu/`` (or the bare path) → ``alice/gpu``."""
    path = text.removeprefix("Server at ").strip()
    marker = "/user/"
    idx = path.find(marker)
    if idx < 0:
        return None
    parts = path[idx + len(marker) :].strip("/").split("/")
    if not parts or not parts[0]:
        return None
    name = unquote(parts[0])
    server = unquote(parts[1]) if len(parts) > 1 else ""
    return f"{name}/{server}"


def needs_client_description(client_id: str) -> bool:
    """Does resolving a token of ``client_id`` need the OAuth client's description?"""
    return bool(client_id) and client_id != "jupyterhub" and not client_id.startswith("service-")


def holds_admin(admin: bool, role_names: Iterable[str]) -> bool:
    """Does a user hold the ``admin`` role's scopes (flagged admin, or assigned the role)?"""
    return admin or "admin" in role_names


def user_raw_scopes(
    user_role: Sequence[str],
    admin_role: Sequence[str],
    roles: Iterable[tuple[str, Sequence[str] | None]],
    group_roles: Iterable[Sequence[str] | None],
    shared: Iterable[str],
) -> list[str]:
    """Unexpanded scopes of a user: ``user_role`` / ``admin_role`` are the built-in roles'
    current scopes (``admin_role`` empty unless :func:`holds_admin`), ``roles`` the user's own
    (name, scopes), ``group_roles`` their groups' roles' scopes, ``shared`` their shares'."""
    raw: list[str] = [*user_role, *admin_role]
    for name, scopes in roles:
        if name not in ("user", "admin"):
            raw.extend(scopes or ())
    for scopes in group_roles:
        raw.extend(scopes or ())
    raw.extend(shared)
    return raw


def token_subject(
    note: str, client_id: str, client_description: str | None, owner: S.Subject
) -> S.Subject:
    """The token owner's Subject with the issuing client's server/service, for bare
    ``!server`` / ``!service`` filters."""
    server = server_from_base_url(note) if note.startswith("Server at ") else None
    service: str | None = None
    if client_id.startswith("service-"):
        service = client_id.removeprefix("service-")
    elif client_id.startswith("jupyterhub-user-") and server is None:
        server = server_from_base_url(client_description or "")
    return S.Subject(owner.kind, owner.name, owner.groups, server=server, service=service)


def client_access_scopes(client_id: str, client_description: str | None) -> list[str]:
    """The access scope an OAuth token always carries for its own client (protocol §8.4)."""
    if not client_id or client_id == "jupyterhub":
        return []
    if client_id.startswith("service-"):
        return [f"access:services!service={client_id.removeprefix('service-')}"]
    server = server_from_base_url(client_description or "")
    return [f"access:servers!server={server}"] if server else []


def token_own_scopes(
    raw: Sequence[str] | None, client_id: str, client_description: str | None, subject: S.Subject
) -> frozenset[str] | None:
    """A token's own expanded scopes (with its client's access scope and the identify scopes),
    to be intersected with its owner's; None for ``inherit`` (exactly the owner's)."""
    wanted = list(raw or [])
    if "inherit" in wanted:
        return None
    wanted.extend(client_access_scopes(client_id, client_description))
    return S.expand(wanted, subject) | S.identify_scopes(subject)


def groups_needed(mine: frozenset[str], owner: frozenset[str]) -> set[str] | None:
    """Users whose groups :func:`scopes.intersect` needs (group filters on either side), or
    None when no group lookup is needed."""
    if S.has_group_filters(mine) or S.has_group_filters(owner):
        return S.users_named(mine | owner)
    return None
