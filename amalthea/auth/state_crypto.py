"""Encryption of ``auth_state`` at rest.

Keys come from the environment variable ``AMALTHEA_CRYPT_KEY``: one or more keys separated by
``;``. The first key encrypts; every key decrypts. That is how a key is rotated:

1. prepend a new key (``NEW;OLD``) and restart the hub: new writes use NEW, old rows still read;
2. run :meth:`AuthStateCrypto.rotate` over the stored rows (``amalthea`` can do it at startup);
3. drop OLD.

Each key is a Fernet key (32 random bytes, url-safe base64, 44 characters) or 64 hex digits
(32 bytes), so keys made for other hubs with ``openssl rand -hex 32`` also work.
The format is Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) through cryptography's
MultiFernet; we add nothing of our own. Keys are never logged or put into error messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# cryptography is imported where keys are used: the hub imports this module at every start,
# and only hubs with auth_state or MFA ever build a key (tests/hub/test_startup_imports.py)
if TYPE_CHECKING:
    from cryptography.fernet import Fernet

ENV_VAR = "AMALTHEA_CRYPT_KEY"
GENERATE_HINT = (
    "Generate a key with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'"
)


class CryptKeyError(ValueError):
    """``AMALTHEA_CRYPT_KEY`` is missing or malformed (raised at startup)."""


class DecryptError(ValueError):
    """Stored auth_state cannot be decrypted with any configured key."""


def generate_key() -> str:
    """A new random key suitable for AMALTHEA_CRYPT_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _parse_key(text: str, index: int) -> Fernet:
    from cryptography.fernet import Fernet

    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        # Say which key and what shape is expected; never echo the key itself.
        raise CryptKeyError(
            f"Key #{index + 1} in {ENV_VAR} is not 32 bytes of url-safe base64 or hex "
            f"(got {len(text)} characters). {GENERATE_HINT}"
        )
    return Fernet(base64.urlsafe_b64encode(raw))


def parse_keys(value: str) -> list[Fernet]:
    """Split a ``;``-separated key list; raise CryptKeyError if any part is malformed."""
    parts = [p.strip() for p in value.split(";") if p.strip()]
    return [_parse_key(p, i) for i, p in enumerate(parts)]


class AuthStateCrypto:
    """Encrypts dicts to bytes and back with the configured key list."""

    def __init__(self, keys: list[Fernet]) -> None:
        if not keys:
            raise CryptKeyError(f"No encryption key given. {GENERATE_HINT}")
        from cryptography.fernet import MultiFernet

        self._fernet = MultiFernet(keys)
        self._newest = keys[0]
        self.key_count = len(keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthStateCrypto:
        """Build from ``AMALTHEA_CRYPT_KEY``; raise CryptKeyError with the fix when unset."""
        value = (os.environ if env is None else env).get(ENV_VAR, "")
        if not value.strip():
            raise CryptKeyError(
                f"auth_state is enabled (Authenticator.enable_auth_state = True) but {ENV_VAR} "
                f"is not set, so tokens cannot be stored encrypted. Set {ENV_VAR} in the hub's "
                f"environment, or turn enable_auth_state off. {GENERATE_HINT}"
            )
        return cls(parse_keys(value))

    def encrypt(self, state: Mapping[str, Any]) -> bytes:
        """JSON-encode and encrypt with the newest (first) key."""
        return self._fernet.encrypt(json.dumps(dict(state), separators=(",", ":")).encode())

    def decrypt(self, token: bytes) -> dict[str, Any]:
        """Decrypt with any configured key; DecryptError if none fits (key rotated away?)."""
        from cryptography.fernet import InvalidToken

        try:
            data = json.loads(self._fernet.decrypt(token))
        except InvalidToken as e:
            raise DecryptError(
                f"Stored auth_state cannot be decrypted with any of the {self.key_count} key(s) "
                f"in {ENV_VAR}: the key that wrote it was probably removed, or the data is corrupt. "
                "The user must log in again to store fresh auth_state."
            ) from e
        if not isinstance(data, dict):
            raise DecryptError("Decrypted auth_state is not a JSON object.")
        return data

    def needs_rotation(self, token: bytes) -> bool:
        """True if ``token`` was written with an older key (so :meth:`rotate` would change it)."""
        from cryptography.fernet import InvalidToken

        try:
            self._newest.decrypt(token)
        except InvalidToken:
            return True
        return False

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` with the newest key (keeps the payload, drops old-key reliance)."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.rotate(token)
        except InvalidToken as e:
            raise DecryptError(
                f"Cannot re-encrypt: no key in {ENV_VAR} decrypts this auth_state."
            ) from e


def check_config(
    enable_auth_state: bool, env: Mapping[str, str] | None = None
) -> AuthStateCrypto | None:
    """Startup check for the hub: the crypto object when auth_state is on, else None.

    Raises CryptKeyError when auth_state is enabled without a usable key, so the hub refuses to
    start instead of silently storing tokens in clear text.
    """
    if not enable_auth_state:
        return None
    return AuthStateCrypto.from_env(env)


_default: AuthStateCrypto | None = None


def _crypto() -> AuthStateCrypto:
    global _default
    if _default is None:
        _default = AuthStateCrypto.from_env()
    return _default


def encrypt(state: Mapping[str, Any]) -> bytes:
    """Encrypt with keys from the process environment (read once)."""
    return _crypto().encrypt(state)


def decrypt(token: bytes) -> dict[str, Any]:
    """Decrypt with keys from the process environment (read once)."""
    return _crypto().decrypt(token)
