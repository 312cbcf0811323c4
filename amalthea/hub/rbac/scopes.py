"""Pure scope algebra: parse, validate, expand, reduce, cover, intersect (protocol §4).

A scope is ``<base>`` or ``<base>!<kind>=<name>`` with kind ∈ user, server, group, service;
server names are ``<owner>/<server_name>`` (``alice/`` = default server). In role and token
definitions a *bare* filter (``!user``, ``!server``, ``!service``) stands for "the token owner"
or "the OAuth client that issued the token"; :func:`expand` resolves it for a :class:`Subject`.

Invariants of an *expanded* set (what :func:`expand` returns and :func:`covers` expects):
every implied subscope is present with the same filter, no bare filters remain, ``self`` is
replaced, and it is reduced (no filtered copy of a scope that is also held unfiltered, no
``!server=u/*`` next to ``!user=u``). Group filters stay symbolic: whether ``!group=g`` covers
a user needs that user's groups, which the caller passes in (no I/O here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from amalthea.hub.rbac.vocabulary import (
    BUILTIN,
    SELF_SCOPES,
    USER_MODEL_SCOPES,
    ScopeError,
    define_custom_scopes,
    lookup,
)

__all__ = [
    "Filters",
    "Scope",
    "ScopeError",
    "Subject",
    "any_filter",
    "covers",
    "describe",
    "expand",
    "filters",
    "identify_scopes",
    "intersect",
    "is_covered",
    "not_covered",
    "reduce",
    "server_access_scopes",
    "service_access_scopes",
    "set_custom_scopes",
    "users_named",
    "validate",
]

FILTER_KINDS = ("user", "server", "group", "service")
BARE_FILTERS = ("user", "server", "service")

#: Given a user name, the names of their groups (callers precompute it from the database).
GroupsOf = Callable[[str], Iterable[str]] | Mapping[str, Iterable[str]]


@dataclass(frozen=True)
class Subject:
    """Who scopes are expanded for.

    ``server`` (``owner/name``) and ``service`` name the OAuth client that issued a token, so
    bare ``!server`` / ``!service`` filters can resolve; ``groups`` are the user's groups.
    """

    kind: str  # "user" | "service"
    name: str
    groups: tuple[str, ...] = field(default_factory=tuple)
    server: str | None = None
    service: str | None = None


@dataclass(frozen=True)
class Scope:
    """One parsed scope string. ``kind=""`` = unfiltered; ``value=None`` = bare filter."""

    base: str
    kind: str = ""
    value: str | None = None

    @property
    def bare(self) -> bool:
        return bool(self.kind) and self.value is None

    def __str__(self) -> str:
        if not self.kind:
            return self.base
        if self.value is None:
            return f"{self.base}!{self.kind}"
        return f"{self.base}!{self.kind}={self.value}"

    def with_filter(self, base: str) -> Scope:
        return Scope(base, self.kind, self.value)


@lru_cache(maxsize=65536)
def parse(text: str) -> Scope:
    """Split a scope string; raises ScopeError for a malformed filter (not for unknown bases)."""
    base, sep, filt = text.partition("!")
    if not sep:
        return Scope(base)
    kind, eq, value = filt.partition("=")
    if kind not in FILTER_KINDS:
        raise ScopeError(
            f"Invalid filter {filt!r} in scope {text!r}: use one of !user=, "
            "!server=, !group=, !service="
        )
    if not eq:
        if kind not in BARE_FILTERS:
            raise ScopeError(f"Filter !{kind} in scope {text!r} needs a name: !{kind}=<name>")
        return Scope(base, kind, None)
    if not value:
        raise ScopeError(f"Empty filter value in scope {text!r}")
    if kind == "server" and "/" not in value:
        raise ScopeError(
            f"Invalid server filter in scope {text!r}: use !server=<user>/<server name> "
            "(the default server is '<user>/')"
        )
    return Scope(base, kind, value)


def validate(text: str) -> Scope:
    """Parse and check the base scope exists; raises ScopeError with a helpful message."""
    if not isinstance(text, str) or not text:
        raise ScopeError(f"Scope must be a non-empty string, not {text!r}")
    if text == "all":
        raise ScopeError("Scope 'all' is not supported; use 'inherit'")
    scope = parse(text)
    if lookup(scope.base) is None:
        raise ScopeError(f"Unknown scope {scope.base!r} (in {text!r})")
    return scope


def describe(text: str) -> str:
    """Human description of a scope, including its filter, for pages."""
    scope = parse(text)
    found = lookup(scope.base)
    desc = found.description if found else scope.base
    if scope.kind and scope.value is not None:
        desc = f"{desc.rstrip('.')} (only {scope.kind} {scope.value})."
    return desc


def _resolve_bare(scope: Scope, subject: Subject | None) -> Scope | None:
    """Bare filter → concrete one for ``subject``; None when it cannot be resolved (dropped)."""
    if subject is None:
        return None
    if scope.kind == "user" and subject.kind == "user":
        return Scope(scope.base, "user", subject.name)
    if scope.kind == "server" and subject.server:
        return Scope(scope.base, "server", subject.server)
    if scope.kind == "service":
        name = subject.service or (subject.name if subject.kind == "service" else None)
        if name:
            return Scope(scope.base, "service", name)
    return None


def _add_with_subscopes(scope: Scope, out: set[Scope]) -> None:
    if scope in out:
        return
    out.add(scope)
    found = lookup(scope.base)
    if found is None:
        return
    for sub in found.subscopes:
        if scope.kind == "server" and sub in USER_MODEL_SCOPES:
            continue
        _add_with_subscopes(scope.with_filter(sub), out)


def expand(scopes: Iterable[str], subject: Subject | None = None) -> frozenset[str]:
    """Raw scopes → expanded, reduced set (see module docstring). ``inherit`` is kept as is:
    resolving it needs the owner's scopes, which is ``resolve.token_scopes``' job."""
    return _expand(frozenset(scopes), subject)


@lru_cache(maxsize=4096)
def _expand(scopes: frozenset[str], subject: Subject | None) -> frozenset[str]:
    out: set[Scope] = set()
    for text in scopes:
        try:
            scope = parse(text)
        except ScopeError:
            continue  # invalid stored scopes grant nothing rather than break every request
        if scope.base == "self":
            if subject is not None and subject.kind == "user":
                for base in SELF_SCOPES:
                    _add_with_subscopes(Scope(base, "user", subject.name), out)
            continue
        if scope.bare:
            resolved = _resolve_bare(scope, subject)
            if resolved is None:
                continue
            scope = resolved
        _add_with_subscopes(scope, out)
    return reduce(str(s) for s in out)


def reduce(scopes: Iterable[str]) -> frozenset[str]:
    """Drop scopes made redundant by a broader one in the same set."""
    parsed = {parse(s) for s in scopes}
    unfiltered = {s.base for s in parsed if not s.kind}
    users = {(s.base, s.value) for s in parsed if s.kind == "user"}
    kept: set[str] = set()
    for s in parsed:
        if s.kind and s.base in unfiltered:
            continue
        if s.kind == "server" and (s.base, (s.value or "").split("/", 1)[0]) in users:
            continue
        kept.add(str(s))
    return frozenset(kept)


def _groups(groups_of: GroupsOf | None, user: str) -> Iterable[str]:
    if groups_of is None:
        return ()
    if callable(groups_of):
        return groups_of(user)
    return groups_of.get(user, ())


def covers(
    held: frozenset[str],
    scope: str,
    *,
    user: str | None = None,
    server: str | None = None,
    group: str | None = None,
    service: str | None = None,
    user_groups: Iterable[str] = (),
) -> bool:
    """Does the expanded set ``held`` grant base scope ``scope`` on the named resource?

    With no resource named, only an unfiltered hold counts. ``user_groups`` are the groups of
    ``user`` (or of the owner of ``server``) so that ``!group=`` filters can apply.
    """
    if scope in held:
        return True
    prefix = scope + "!"
    if server is not None:
        owner = server.split("/", 1)[0]
        if f"{prefix}server={server}" in held or f"{prefix}user={owner}" in held:
            return True
    elif user is not None:
        if f"{prefix}user={user}" in held:
            return True
    if group is not None and f"{prefix}group={group}" in held:
        return True
    if service is not None and f"{prefix}service={service}" in held:
        return True
    if user is not None or server is not None:
        return any(f"{prefix}group={g}" in held for g in user_groups)
    return False


def any_filter(held: frozenset[str], scope: str) -> bool:
    """Is ``scope`` held at all, with or without a filter? (decides 404 vs 403)"""
    prefix = scope + "!"
    return scope in held or any(s.startswith(prefix) for s in held)


def is_covered(held: frozenset[str], text: str, groups_of: GroupsOf | None = None) -> bool:
    """Is the (possibly filtered) scope ``text`` within the expanded set ``held``?"""
    scope = parse(text)
    if scope.base in held:
        return True
    if not scope.kind:
        return False
    if text in held:
        return True
    prefix = scope.base + "!"
    value = scope.value or ""
    if scope.kind == "server":
        owner = value.split("/", 1)[0]
        if f"{prefix}user={owner}" in held:
            return True
        return any(f"{prefix}group={g}" in held for g in _groups(groups_of, owner))
    if scope.kind == "user":
        return any(f"{prefix}group={g}" in held for g in _groups(groups_of, value))
    return False


def not_covered(
    held: frozenset[str], wanted: Iterable[str], groups_of: GroupsOf | None = None
) -> list[str]:
    """The scopes of ``wanted`` (expanded) that ``held`` does not grant, sorted."""
    return sorted(s for s in wanted if not is_covered(held, s, groups_of))


def intersect(
    a: frozenset[str], b: frozenset[str], groups_of: GroupsOf | None = None
) -> frozenset[str]:
    """Filter-aware intersection of two expanded sets: what both grant.

    A scope survives if the other side covers it; so ``read:users`` ∩ ``read:users!user=a``
    = ``read:users!user=a`` and ``!group=g`` ∩ ``!user=u`` = ``!user=u`` when u is in g.
    """
    if a == b:
        return a
    kept = {s for s in a if is_covered(b, s, groups_of)}
    kept.update(s for s in b if is_covered(a, s, groups_of))
    return reduce(kept)


@dataclass(frozen=True)
class Filters:
    """Which resources a held scope reaches, for post-filtering list results."""

    unfiltered: bool = False
    users: frozenset[str] = frozenset()
    servers: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()

    def allows_user(self, name: str, user_groups: Iterable[str] = ()) -> bool:
        if self.unfiltered or name in self.users:
            return True
        return bool(self.groups) and any(g in self.groups for g in user_groups)


def filters(held: frozenset[str], scope: str) -> Filters | None:
    """How ``scope`` is held: None (not at all), unfiltered, or the sets of filter names."""
    if scope in held:
        return Filters(unfiltered=True)
    prefix = scope + "!"
    found: dict[str, set[str]] = {k: set() for k in FILTER_KINDS}
    any_found = False
    for text in held:
        if text.startswith(prefix):
            s = parse(text)
            if s.value is not None:
                found[s.kind].add(s.value)
                any_found = True
    if not any_found:
        return None
    return Filters(
        users=frozenset(found["user"]),
        servers=frozenset(found["server"]),
        groups=frozenset(found["group"]),
        services=frozenset(found["service"]),
    )


def users_named(scopes: Iterable[str]) -> set[str]:
    """User names appearing in ``!user=`` / ``!server=`` filters (to batch group lookups)."""
    names: set[str] = set()
    for text in scopes:
        _, sep, filt = text.partition("!")
        if sep and "=" in filt:
            kind, _, value = filt.partition("=")
            if kind == "user":
                names.add(value)
            elif kind == "server":
                names.add(value.split("/", 1)[0])
    return names


def has_group_filters(scopes: Iterable[str]) -> bool:
    return any("!group=" in s for s in scopes)


def identify_scopes(subject: Subject) -> frozenset[str]:
    """Scopes every token has on its own owner, so ``GET /api/user`` always works."""
    if subject.kind == "user":
        return frozenset(
            {f"read:users:name!user={subject.name}", f"read:users:groups!user={subject.name}"}
        )
    return frozenset({f"read:services:name!service={subject.name}"})


def server_access_scopes(username: str, server_name: str) -> list[str]:
    """``JUPYTERHUB_OAUTH_ACCESS_SCOPES`` of a server (protocol §8.1)."""
    return [f"access:servers!server={username}/{server_name}", f"access:servers!user={username}"]


def service_access_scopes(name: str) -> list[str]:
    """``JUPYTERHUB_OAUTH_ACCESS_SCOPES`` of a service (protocol §10.2)."""
    return ["access:services", f"access:services!service={name}"]


def set_custom_scopes(spec: Mapping[str, Mapping[str, object]]) -> None:
    """Install ``custom_scopes`` config (validated) and forget cached expansions."""
    define_custom_scopes(spec)
    _expand.cache_clear()


def all_scopes() -> list[str]:
    """Every built-in scope name, for validation messages and the token page."""
    return sorted(k for k in BUILTIN if k != "(no_scope)")
