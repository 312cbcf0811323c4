"""TOTP MFA for local accounts with an in-memory store."""

from __future__ import annotations

import time

import pyotp
import pytest

from amalthea.auth.mfa import InMemoryMFAStore, MFAError, MFAManager
from amalthea.auth.state_crypto import AuthStateCrypto, CryptKeyError, generate_key


@pytest.fixture
def store():
    return InMemoryMFAStore()


@pytest.fixture
def mfa(store):
    return MFAManager(store, AuthStateCrypto.from_env({"AMALTHEA_CRYPT_KEY": generate_key()}))


async def enrolled(mfa, name="alice"):
    enrolment = await mfa.enrol(name)
    totp = pyotp.TOTP(enrolment.secret)
    # confirm with the previous step's code, so the current one is still fresh for the test
    codes = await mfa.confirm(name, totp.at(time.time() - 30))
    assert codes is not None
    return totp, codes


async def test_enrol_gives_uri_and_needs_confirmation(mfa, store):
    enrolment = await mfa.enrol("alice")
    assert enrolment.uri.startswith("otpauth://totp/Amalthea:alice?secret=" + enrolment.secret)
    assert "issuer=Amalthea" in enrolment.uri
    assert not await mfa.is_enrolled("alice")
    # the secret is stored encrypted
    assert enrolment.secret.encode() not in store.records["alice"].totp_secret_encrypted
    # not active before confirmation
    assert not await mfa.verify("alice", pyotp.TOTP(enrolment.secret).now())
    assert await mfa.confirm("alice", "000000") is None
    codes = await mfa.confirm("alice", pyotp.TOTP(enrolment.secret).now())
    assert codes and len(codes) == 10 and len(set(codes)) == 10
    assert await mfa.is_enrolled("alice")
    assert all(c not in str(store.records["alice"].recovery_codes) for c in codes)
    with pytest.raises(MFAError):
        await mfa.enrol("alice")


async def test_verify_current_code_and_refuse_wrong(mfa):
    totp, _ = await enrolled(mfa)
    assert not await mfa.verify("alice", "123456" if totp.now() != "123456" else "654321")
    assert not await mfa.verify("alice", "abc")
    assert not await mfa.verify("bob", totp.now())  # not enrolled
    assert await mfa.verify("alice", totp.now())


async def test_code_cannot_be_replayed(mfa):
    totp, _ = await enrolled(mfa)
    code = totp.now()
    assert await mfa.verify("alice", code)
    assert not await mfa.verify("alice", code)


async def test_window_is_one_step(mfa):
    totp, _ = await enrolled(mfa, "carol")
    secret = totp.secret
    now = time.time()
    assert mfa._matching_step(secret, totp.at(now + 30), last_step=0, now=now) is not None
    assert mfa._matching_step(secret, totp.at(now - 30), last_step=0, now=now) is not None
    assert mfa._matching_step(secret, totp.at(now + 90), last_step=0, now=now) is None
    assert mfa._matching_step(secret, totp.at(now - 90), last_step=0, now=now) is None


async def test_recovery_code_works_once(mfa, store):
    _, codes = await enrolled(mfa)
    assert not await mfa.use_recovery_code("alice", "wrong-code1")
    assert await mfa.use_recovery_code("alice", codes[3].upper().replace("-", " "))
    assert not await mfa.use_recovery_code("alice", codes[3])
    assert len(store.records["alice"].recovery_codes) == 9
    assert await mfa.use_recovery_code("alice", codes[0])
    new = await mfa.regenerate_recovery_codes("alice")
    assert not await mfa.use_recovery_code("alice", codes[1])
    assert await mfa.use_recovery_code("alice", new[1])


async def test_policy_and_disable(mfa):
    mfa.mfa_required_groups = {"staff"}
    assert mfa.requires_mfa(["staff", "x"]) and not mfa.requires_mfa(["students"])
    await enrolled(mfa)
    await mfa.disable("alice")
    assert not await mfa.is_enrolled("alice")


def test_needs_a_key(store, monkeypatch):
    monkeypatch.delenv("AMALTHEA_CRYPT_KEY", raising=False)
    with pytest.raises(CryptKeyError, match="MFA stores TOTP secrets encrypted"):
        MFAManager(store)
