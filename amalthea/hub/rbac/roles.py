"""Built-in roles and roles from config (protocol §4.3), applied to the database at startup.

``user``, ``admin``, ``server`` and ``token`` always exist. ``admin`` cannot be redefined;
the other defaults may be redefined by config (e.g. ``user`` with extra scopes). Config role
membership is authoritative at each start: a role's ``users``/``groups``/``services`` lists
replace what the database had (an omitted list means "nobody"), except that every user holds
``user`` implicitly and admins (``User.admin``) keep ``admin``.

Role names: 3-255 characters, ``[a-z][a-z0-9\\-_~.]*[a-z0-9]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from traitlets import Dict, List, Unicode
from traitlets.config import Configurable

from amalthea.hub.rbac import scopes as S
from amalthea.hub.rbac.effective import ADMIN_SCOPES, DEFAULT_ROLES
from amalthea.hub.rbac.vocabulary import ScopeError

__all__ = ["DEFAULT_ROLES", "RoleError", "Roles", "apply_roles", "validate_role"]

ROLE_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_~.]{1,253}[a-z0-9]$")
ROLE_KEYS = {"name", "description", "scopes", "users", "groups", "services"}


class RoleError(ValueError):
    """A role definition from config is invalid; the message names the role and the key."""


class Roles(Configurable):
    """Roles and scopes configuration (also reachable as ``c.Amalthea.load_roles``)."""

    load_roles = List(
        Dict(),
        help="""Roles to create or update at startup: dicts with ``name``, ``description``,
        ``scopes`` and who holds them (``users``, ``groups``, ``services``). Membership listed
        here replaces the database's at every start.""",
    ).tag(config=True)
    custom_scopes = Dict(
        help="""Custom scopes ``{"custom:name": {"description": str, "subscopes": [...]}}``;
        names must match ``custom:[a-z0-9][a-z0-9_-*:]+[a-z0-9_*]``. The hub stores, expands
        and checks them; services interpret them.""",
    ).tag(config=True)
    extra_user_scopes = List(
        Unicode(),
        help="Scopes added to the default ``user`` role (e.g. ``['shares!user']``).",
    ).tag(config=True)


def validate_role(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Check one role dict from config; returns a normalised copy or raises RoleError."""
    if not isinstance(spec, Mapping):
        raise RoleError(f"load_roles entries must be dicts, not {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or not ROLE_NAME_RE.match(name):
        raise RoleError(
            f"Invalid role name {name!r} in load_roles: 3-255 characters, lowercase letters, "
            "digits and -_~. , starting with a letter and ending with a letter or digit"
        )
    unknown = set(spec) - ROLE_KEYS
    if unknown:
        raise RoleError(f"Role {name!r} has unknown keys {sorted(unknown)}; allowed: "
                        f"{sorted(ROLE_KEYS)}")  # fmt: skip
    if name == "admin" and "scopes" in spec and sorted(spec["scopes"]) != sorted(ADMIN_SCOPES):
        raise RoleError("The 'admin' role's scopes cannot be changed; define a new role instead")
    out: dict[str, Any] = {"name": name, "description": str(spec.get("description", ""))}
    scopes = spec.get("scopes", DEFAULT_ROLES.get(name, {}).get("scopes", []))
    if not isinstance(scopes, list | tuple):
        raise RoleError(f"Role {name!r}: 'scopes' must be a list of strings")
    for scope in scopes:
        try:
            S.validate(scope)
        except ScopeError as e:
            raise RoleError(f"Role {name!r}: {e}") from e
    out["scopes"] = list(scopes)
    for key in ("users", "groups", "services"):
        members = spec.get(key)
        if members is not None and (
            not isinstance(members, list | tuple) or not all(isinstance(m, str) for m in members)
        ):
            raise RoleError(f"Role {name!r}: {key!r} must be a list of names")
        out[key] = None if members is None else list(members)
    return out


async def _upsert_role(session: AsyncSession, spec: Mapping[str, Any]) -> Any:
    from amalthea.hub.store.models import Role

    role = (await session.execute(select(Role).where(Role.name == spec["name"]))).scalar()
    if role is None:
        role = Role(name=spec["name"])
        session.add(role)
    role.description = spec.get("description") or role.description or ""
    role.scopes = list(spec["scopes"])
    await session.flush()
    return role


async def _ids_for(
    session: AsyncSession, model: Any, names: Iterable[str], create: bool
) -> list[int]:
    from amalthea.hub.store.models import User

    wanted = list(dict.fromkeys(names))
    rows = dict((await session.execute(select(model.name, model.id).where(
        model.name.in_(wanted)))).all())  # fmt: skip
    missing = [n for n in wanted if n not in rows]
    if missing and not create:
        raise RoleError(f"{model.__tablename__} {missing} named in load_roles do not exist")
    for name in missing:
        obj = model(name=name)
        if model is User:
            import uuid

            obj.cookie_id = uuid.uuid4().hex
        session.add(obj)
        await session.flush()
        rows[name] = obj.id
    return [rows[n] for n in wanted]


async def _set_members(session: AsyncSession, role_id: int, spec: Mapping[str, Any]) -> None:
    from amalthea.hub.store.models import (
        Group,
        Service,
        User,
        group_role_map,
        service_role_map,
        user_role_map,
    )

    for key, model, table, col in (
        ("users", User, user_role_map, "user_id"),
        ("groups", Group, group_role_map, "group_id"),
        ("services", Service, service_role_map, "service_id"),
    ):
        names = spec.get(key)
        if names is None and spec["name"] == "user" and key == "users":
            continue  # every user holds 'user' implicitly
        ids = await _ids_for(session, model, names or [], create=key != "services")
        await session.execute(delete(table).where(table.c.role_id == role_id))
        if ids:
            await session.execute(
                insert(table), [{col: i, "role_id": role_id, "managed_by_auth": False} for i in ids]
            )
        if spec["name"] == "admin" and key == "users":
            await session.execute(update(User).where(User.id.in_(ids)).values(admin=True))


async def apply_roles(
    session: AsyncSession,
    load_roles: Sequence[Mapping[str, Any]] = (),
    custom_scopes: Mapping[str, Mapping[str, Any]] | None = None,
    extra_user_scopes: Sequence[str] = (),
) -> None:
    """Validate and write default + configured roles. Raises RoleError/ScopeError on bad config
    (call it once at startup; commit is the caller's)."""
    S.set_custom_scopes(custom_scopes or {})
    specs = [validate_role(r) for r in load_roles]
    names = [s["name"] for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RoleError(f"Roles defined more than once in load_roles: {sorted(dupes)}")
    configured = {s["name"]: s for s in specs}
    for name, default in DEFAULT_ROLES.items():
        spec = dict(configured.get(name) or {"name": name, **default})
        if name == "user":
            for scope in extra_user_scopes:
                S.validate(scope)
            spec["scopes"] = list(dict.fromkeys([*spec["scopes"], *extra_user_scopes]))
        if name == "admin":
            spec["scopes"] = list(ADMIN_SCOPES)
        role = await _upsert_role(session, spec)
        if name in configured:
            await _set_members(session, role.id, spec)
    for name, spec in configured.items():
        if name in DEFAULT_ROLES:
            continue
        role = await _upsert_role(session, spec)
        await _set_members(session, role.id, spec)
    from amalthea.hub.rbac.resolve import forget_roles

    forget_roles()
