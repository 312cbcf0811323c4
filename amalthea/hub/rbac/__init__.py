"""Roles and scopes (JupyterHub 6's vocabulary, jupyterhub-protocol.md §4).

This is the interface the rest of the hub uses; the pure scope algebra lives in ``scopes.py``
(no SQL, no HTTP) and the database-facing resolution in ``resolve.py``.

INTERFACE (stable; the web layer and lifecycle call only these):
- ``Subject``: who is asking (kind "user"/"service", name, groups) — plain data.
- ``expand(scopes, subject)`` -> frozenset[str]: expansion of raw scopes incl. subscopes, ``self``,
  bare filters resolved for ``subject``.
- ``covers(held, scope, *, user=None, server=None, group=None, service=None, user_groups=())``
  -> bool: does the expanded set ``held`` grant ``scope`` on that resource?
- ``any_filter(held, scope)`` -> bool: is ``scope`` held with *some* filter (for 404-vs-403)?
- ``server_access_scopes(username, server_name)`` -> list[str]: JUPYTERHUB_OAUTH_ACCESS_SCOPES.
- ``resolve.user_scopes(session, user)`` / ``resolve.token_scopes(session, token)``: async,
  from the user's roles, group roles and shares, and the token's own scopes ∩ owner's.
"""

from amalthea.hub.rbac.scopes import Subject, any_filter, covers, expand, server_access_scopes

__all__ = ["Subject", "any_filter", "covers", "expand", "server_access_scopes"]
