"""Secrets generated on first start and kept in one JSON file readable only by the hub (0600).

Holds the cookie secret (signs session and XSRF cookies) and the proxy API token. The file is
created with O_EXCL and mode 0600 so it is never world-readable, not even for an instant; an
existing file with looser permissions is refused with a message that says how to fix it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

__all__ = ["HubSecrets", "SecretsFileError", "load_or_create"]


class SecretsFileError(Exception):
    pass


class HubSecrets:
    def __init__(self, cookie_secret: bytes, proxy_token: str) -> None:
        self.cookie_secret = cookie_secret
        self.proxy_token = proxy_token


def load_or_create(path: Path) -> HubSecrets:
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretsFileError(
                f"{path} is readable by other users (mode {mode:o}). "
                f"Run `chmod 600 {path}` and start again."
            )
        try:
            data = json.loads(path.read_text())
            return HubSecrets(bytes.fromhex(data["cookie_secret"]), data["proxy_token"])
        except (ValueError, KeyError) as e:
            raise SecretsFileError(
                f"{path} is not a valid Amalthea secrets file ({e}). Remove it to generate new "
                "secrets (everyone will have to log in again)."
            ) from e
    data = {"cookie_secret": secrets.token_hex(32), "proxy_token": secrets.token_hex(32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return HubSecrets(bytes.fromhex(data["cookie_secret"]), data["proxy_token"])
