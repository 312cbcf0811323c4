"""auth_state encryption: round trip, key rotation, clear errors."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from amalthea.auth.state_crypto import (
    ENV_VAR,
    AuthStateCrypto,
    CryptKeyError,
    DecryptError,
    check_config,
    generate_key,
)

STATE = {"access_token": "at-123", "claims": {"sub": "alice", "groups": ["g"]}, "expires_at": 1.5}


def crypto(value: str) -> AuthStateCrypto:
    return AuthStateCrypto.from_env({ENV_VAR: value})


def test_round_trip_and_ciphertext_hides_tokens():
    c = crypto(generate_key())
    token = c.encrypt(STATE)
    assert b"at-123" not in token
    assert c.decrypt(token) == STATE


def test_hex_keys_accepted():
    c = crypto("ab" * 32)
    assert c.decrypt(c.encrypt(STATE)) == STATE


def test_rotation_new_key_first_old_still_decrypts():
    old, new = generate_key(), generate_key()
    stored = crypto(old).encrypt(STATE)
    rotated_config = crypto(f"{new}; {old}")
    assert rotated_config.decrypt(stored) == STATE
    re_encrypted = rotated_config.rotate(stored)
    # after rotation the old key can be dropped
    assert crypto(new).decrypt(re_encrypted) == STATE
    with pytest.raises(DecryptError, match="cannot be decrypted"):
        crypto(old).decrypt(re_encrypted)
    # new writes use the first key
    assert crypto(new).decrypt(rotated_config.encrypt(STATE)) == STATE


def test_missing_key_is_a_clear_startup_error():
    assert check_config(False, {}) is None
    with pytest.raises(
        CryptKeyError, match=r"enable_auth_state.*AMALTHEA_CRYPT_KEY.*Fernet.generate_key"
    ):
        check_config(True, {})
    assert isinstance(check_config(True, {ENV_VAR: generate_key()}), AuthStateCrypto)


def test_malformed_key_names_position_not_value():
    secretish = "not-a-key-but-secret"
    with pytest.raises(CryptKeyError) as e:
        crypto(f"{generate_key()};{secretish}")
    assert "Key #2" in str(e.value) and secretish not in str(e.value)


def test_garbage_and_wrong_key():
    c = crypto(generate_key())
    with pytest.raises(DecryptError):
        c.decrypt(b"garbage")
    with pytest.raises(DecryptError):
        c.rotate(Fernet(Fernet.generate_key()).encrypt(b"{}"))
