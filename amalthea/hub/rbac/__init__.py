"""Roles and scopes (JupyterHub 6's vocabulary, jupyterhub-protocol.md §4).

This is the interface the rest of the hub uses; the pure scope algebra lives in ``scopes.py``
(no SQL, no HTTP), the vocabulary in ``vocabulary.py``, the database-facing resolution in
``resolve.py`` and the built-in/configured roles in ``roles.py``.

INTERFACE (stable; the web layer and lifecycle call only these):
- ``Subject``: who is asking (kind "user"/"service", name, groups; optionally the issuing
  OAuth client's ``server``/``service`` for bare filters) — plain data.
- ``expand(scopes, subject)`` -> frozenset[str]: expansion of raw scopes incl. subscopes, ``self``,
  bare filters resolved for ``subject``; reduced.
- ``covers(held, scope, *, user=None, server=None, group=None, service=None, user_groups=())``
  -> bool: does the expanded set ``held`` grant ``scope`` on that resource?
- ``any_filter(held, scope)`` -> bool: is ``scope`` held with *some* filter (for 404-vs-403)?
- ``filters(held, scope)`` -> Filters | None: for post-filtering list endpoints.
- ``intersect(a, b, groups_of)``, ``not_covered(held, wanted, groups_of)``: token ∩ owner.
- ``server_access_scopes(username, server_name)`` -> list[str]: JUPYTERHUB_OAUTH_ACCESS_SCOPES.
- ``resolve.user_scopes(session, user)`` / ``resolve.token_scopes(session, token)``: async,
  from the user's roles, group roles and shares, and the token's own scopes ∩ owner's.
"""

from amalthea.hub.rbac.scopes import (
    Filters,
    Subject,
    any_filter,
    covers,
    describe,
    expand,
    filters,
    identify_scopes,
    intersect,
    is_covered,
    not_covered,
    reduce,
    server_access_scopes,
    service_access_scopes,
    set_custom_scopes,
    validate,
)
from amalthea.hub.rbac.vocabulary import ScopeError

__all__ = [
    "Filters",
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
    "validate",
]
