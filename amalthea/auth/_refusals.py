"""Log an authenticator's refusals (AuthError.log_message) where the admin will see them.

The contract says ``log_message`` is for the admin's log; these authenticators also log it
themselves at the point of refusal, so an outage (LDAP down, KDC unreachable) or a forged
header leaves a line in the hub log whatever the web layer does with the exception.
A plain 401 challenge (``WWW-Authenticate`` without a log message) is normal traffic and is
logged at debug level only.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from amalthea.auth.base import AuthError

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def logs_refusals(method: F) -> F:
    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except AuthError as e:
            quiet = e.status == 401 and e.headers and e.log_message == e.user_message
            self.log.log(
                10 if quiet else 30, "%s login refused: %s", type(self).__name__, e.log_message
            )
            e.logged = True
            raise

    return wrapper  # type: ignore[return-value]
