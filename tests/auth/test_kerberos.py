"""KerberosAuthenticator against a real MIT KDC on 127.0.0.1 (amalthea.testing.engines.krb5)."""

from __future__ import annotations

import base64
import time

import gssapi
import pytest

from amalthea.auth.base import AuthError, LoginRequest
from amalthea.auth.kerberos import KerberosAuthenticator
from amalthea.testing.engines.krb5 import DOWN_REALM

pytestmark = [pytest.mark.engine("krb5"), pytest.mark.timeout(60)]

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")


def make(kdc, **kw) -> KerberosAuthenticator:
    return KerberosAuthenticator(
        keytab=kdc.keytab, service_principal=kdc.service_principal, allow_all=True, **kw
    )


def negotiate_header(realm, ccache: str, target: str | None = None) -> str:
    """What a browser with a ticket sends: a SPNEGO token for the hub's principal."""
    creds = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
    name = gssapi.Name(target or realm.service_principal, gssapi.NameType.kerberos_principal)
    ctx = gssapi.SecurityContext(name=name, creds=creds, usage="initiate", mech=SPNEGO)
    return "Negotiate " + base64.b64encode(ctx.step()).decode()


async def test_password_login_good_and_bad(kerberos_realm):
    auth = make(kerberos_realm)
    await auth.startup()
    result = await auth.login(LoginRequest(form={"username": "alice", "password": "alice-pw"}))
    assert result is not None and result.name == "alice"
    assert result.user_info == {"principal": "alice@HUB.TEST"}
    assert result.groups is None
    assert await auth.login(LoginRequest(form={"username": "alice", "password": "bad"})) is None
    assert await auth.login(LoginRequest(form={"username": "nobody", "password": "x"})) is None
    assert await auth.login(LoginRequest(form={"username": "alice", "password": ""})) is None
    # names with a realm or instance are not accepted from the form
    assert (
        await auth.login(LoginRequest(form={"username": "HTTP/hub.test", "password": "x"})) is None
    )


async def test_spnego_with_kinit_ticket(kerberos_realm):
    auth = make(kerberos_realm, admin_users={"alice"})
    ccache = kerberos_realm.kinit("alice", "alice-pw")
    header = negotiate_header(kerberos_realm, ccache)
    result = await auth.login(LoginRequest(headers={"Authorization": header}))
    assert result is not None and result.name == "alice" and result.admin is True


async def test_no_header_asks_for_negotiate(kerberos_realm):
    auth = make(kerberos_realm)
    with pytest.raises(AuthError) as err:
        await auth.login(LoginRequest(headers={}))
    assert err.value.status == 401
    assert err.value.headers == {"WWW-Authenticate": "Negotiate"}


async def test_bad_tokens_are_refused(kerberos_realm):
    auth = make(kerberos_realm)
    with pytest.raises(AuthError) as err:
        await auth.login(LoginRequest(headers={"Authorization": "Negotiate !!!notbase64"}))
    assert err.value.status == 400
    garbage = "Negotiate " + base64.b64encode(b"\x60\x05garbage").decode()
    with pytest.raises(AuthError) as err:
        await auth.login(LoginRequest(headers={"Authorization": garbage}))
    assert err.value.status == 401 and "SPNEGO token refused" in err.value.log_message


async def test_realm_not_allowed(kerberos_realm):
    auth = make(kerberos_realm, allowed_realms={"OTHER.TEST"})
    with pytest.raises(AuthError) as err:
        await auth.login(LoginRequest(form={"username": "alice", "password": "alice-pw"}))
    assert "realm" in err.value.user_message


async def test_kdc_unreachable_is_a_clear_error(kerberos_realm):
    auth = make(kerberos_realm, realm=DOWN_REALM, allowed_realms={DOWN_REALM})
    started = time.monotonic()
    with pytest.raises(AuthError) as err:
        await auth.login(LoginRequest(form={"username": "alice", "password": "alice-pw"}))
    assert time.monotonic() - started < 5
    assert err.value.status == 503
    assert err.value.user_message == "The login service is unreachable, try again later."
    assert DOWN_REALM in err.value.log_message


async def test_startup_with_wrong_keytab_fails_clearly(kerberos_realm, tmp_path):
    auth = KerberosAuthenticator(
        keytab=str(tmp_path / "missing.keytab"), service_principal=kerberos_realm.service_principal
    )
    with pytest.raises(ValueError, match=r"missing\.keytab"):
        await auth.startup()


async def test_password_login_is_verified_against_the_keytab(kerberos_realm, tmp_path):
    """A TGT alone is not enough: a stale/forged service key must make the login fail."""
    service = "HTTP/spoof.test@HUB.TEST"
    kerberos_realm.kadmin(f"addprinc -randkey {service}")
    stale = tmp_path / "stale.keytab"
    kerberos_realm.kadmin(f"ktadd -k {stale} {service}")
    kerberos_realm.kadmin(f"ktadd -k {tmp_path / 'current.keytab'} {service}")  # new random key
    auth = KerberosAuthenticator(keytab=str(stale), service_principal=service, allow_all=True)
    await auth.startup()  # the keytab does hold a key for the principal, just not the KDC's
    with pytest.raises(AuthError) as err:
        await auth.login(LoginRequest(form={"username": "alice", "password": "alice-pw"}))
    assert err.value.status == 503
    assert "does not decrypt with keytab" in err.value.log_message
    good = KerberosAuthenticator(
        keytab=str(tmp_path / "current.keytab"), service_principal=service, allow_all=True
    )
    result = await good.login(LoginRequest(form={"username": "alice", "password": "alice-pw"}))
    assert result is not None and result.name == "alice"
