"""Keep secrets that travel in query strings out of the logs.

One-time codes (first-run setup, password links, OAuth ``code``) and ``token`` parameters are
live credentials until used; a URL in a log line must not hand them to whoever reads the log.
"""

from __future__ import annotations

import re

__all__ = ["redact_uri"]

_SECRET_QUERY = re.compile(r"([?&](?:code|token|_xsrf)=)[^&]*")


def redact_uri(uri: str) -> str:
    """``/hub/setup?code=abc&x=1`` → ``/hub/setup?code=[secret]&x=1``."""
    return _SECRET_QUERY.sub(r"\1[secret]", uri)
