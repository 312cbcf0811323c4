"""Names for engine objects (containers, volumes, systemd units) from user and server names.

Docker and systemd accept ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` for container and volume names, while hub
usernames may hold ``@``, ``+``, capitals or non-ASCII letters. Names are lowercased and
every other character becomes ``-``; when that changed anything, a short hash of the original
is appended so ``a@b`` and ``a.b`` never share a home volume.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9_.-]")


def safe_name(name: str) -> str:
    """'Alice@Example.org' -> 'alice-example.org-1f3a9c'; 'alice' -> 'alice'."""
    slug = _UNSAFE.sub("-", name.lower())
    if slug == name and slug[:1].isalnum():
        return slug
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{slug.strip('-_.') or 'x'}-{digest}"


def render(template: str, username: str, server_name: str) -> str:
    """Fill ``{username}``, ``{servername}`` and ``{server_suffix}`` ('-gpu' or '')."""
    user, server = safe_name(username), safe_name(server_name) if server_name else ""
    return template.format(
        username=user,
        servername=server,
        server_suffix=f"-{server}" if server else "",
        raw_username=username,
    )
