"""Does an identity's scope list grant access to this server?

The hub hands us two lists: the scopes that grant access to this server
(``JUPYTERHUB_OAUTH_ACCESS_SCOPES``, e.g. ``access:servers!server=alice/`` and
``access:servers!user=alice``) and, per request, the expanded scopes of the caller (from
``GET /hub/api/user``). Access is granted when any held scope *covers* any required one:

- same base scope (``access:servers``), and
- the held scope is unfiltered, or has the very same filter, or is a user filter for the
  owner of a required server filter (``!user=alice`` covers ``!server=alice/gpu``), or is a
  group filter naming a group the owner belongs to (the hub leaves group filters unresolved,
  so the caller supplies the owner's groups when it knows them).

Plain string intersection would miss the last three cases and lock out admins and
group-shared users; that is the reason this module exists. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Scope", "access_granted", "needs_owner_groups"]


@dataclass(frozen=True)
class Scope:
    """One scope string split into base name and optional ``!kind=value`` filter."""

    base: str
    kind: str = ""  # "", "user", "server", "group", "service"
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Scope:
        base, sep, filt = text.partition("!")
        if not sep:
            return cls(base)
        kind, eq, value = filt.partition("=")
        if not eq:
            # A bare "!user" the hub failed to resolve; treat it as matching nothing.
            return cls(base, kind or "?", "\0unresolved")
        return cls(base, kind, value)

    def covers(self, required: Scope, owner_groups: frozenset[str] = frozenset()) -> bool:
        if self.base != required.base:
            return False
        if not self.kind:
            return True
        if (self.kind, self.value) == (required.kind, required.value):
            return True
        if self.kind == "user" and required.kind == "server":
            return required.value.split("/", 1)[0] == self.value
        if self.kind == "group" and required.kind in {"user", "server"}:
            return self.value in owner_groups
        return False


def needs_owner_groups(held: Iterable[str]) -> bool:
    """True if some held scope has a group filter, so the owner's groups matter."""
    return any(Scope.parse(s).kind == "group" for s in held)


def access_granted(
    held: Iterable[str],
    required: Iterable[str],
    owner_groups: Iterable[str] = (),
) -> bool:
    """True if any scope in ``held`` covers any scope in ``required``."""
    groups = frozenset(owner_groups)
    wanted = [Scope.parse(s) for s in required]
    return any(Scope.parse(h).covers(w, groups) for h in held for w in wanted)
