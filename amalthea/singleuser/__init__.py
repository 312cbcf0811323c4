"""The single-user server: a jupyter_server extension that talks to the hub.

Modules: ``hubenv`` (the JUPYTERHUB_* environment), ``scopes`` (does a caller have access),
``oauth`` (state + PKCE), ``hubclient`` (calls to the hub), ``identity`` (jupyter_server
IdentityProvider/Authorizer), ``handlers`` (login/callback/logout pages), ``activity``
(activity reports), ``nodelay`` (TCP_NODELAY on kernel websockets), ``kernelspec`` (start
python3 kernels as the fast kernel), ``kernel/`` (the fast kernel: ipykernel with IOPub sent
from the producing thread; ``--HubExtension.fast_kernel=False`` turns it off), ``relay``
(kernel JSON spliced into legacy websocket text), ``kernelwatch`` (kernels' execution state
and last activity from IOPub headers, in place of jupyter_server's full-decoding watcher),
``kerneltransport`` (fast kernels over Unix sockets), ``extension`` (wiring into
jupyter_server), ``app`` (the command).
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .extension import HubExtension

    return [{"module": "amalthea.singleuser.extension", "app": HubExtension}]
