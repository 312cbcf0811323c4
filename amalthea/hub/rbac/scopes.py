"""Pure scope algebra. PROVISIONAL minimal version: the RBAC owner replaces it with the full
vocabulary, subscope expansion and filter semantics; the function signatures stay."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Subject:
    kind: str  # "user" | "service"
    name: str
    groups: tuple[str, ...] = field(default_factory=tuple)


def expand(scopes: Iterable[str], subject: Subject | None = None) -> frozenset[str]:
    out: set[str] = set()
    for scope in scopes:
        if scope == "self" and subject is not None and subject.kind == "user":
            for s in ("read:users", "users:activity", "servers", "tokens", "access:servers"):
                out.add(f"{s}!user={subject.name}")
        else:
            out.add(scope)
    return frozenset(out)


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
    if scope in held:
        return True
    if user is not None and f"{scope}!user={user}" in held:
        return True
    if server is not None:
        owner = server.split("/", 1)[0]
        if f"{scope}!server={server}" in held or f"{scope}!user={owner}" in held:
            return True
    return False


def any_filter(held: frozenset[str], scope: str) -> bool:
    return any(s == scope or s.startswith(scope + "!") for s in held)


def server_access_scopes(username: str, server_name: str) -> list[str]:
    return [f"access:servers!server={username}/{server_name}", f"access:servers!user={username}"]
