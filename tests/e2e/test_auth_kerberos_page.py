"""Kerberos through the real hub: the SPNEGO challenge reaches the browser (401 with
``WWW-Authenticate: Negotiate`` and the password form as fallback), a ticket logs in, and so
does the password form."""

from __future__ import annotations

import base64

import httpx
import pytest

from amalthea.testing.engines.auth_fixtures import kerberos_realm  # noqa: F401
from amalthea.testing.hub import start_hub
from amalthea.testing.session import HubSession

gssapi = pytest.importorskip("gssapi")

pytestmark = [pytest.mark.slow, pytest.mark.engine("krb5"), pytest.mark.timeout(180)]

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")


def negotiate(realm, ccache: str) -> str:
    creds = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
    name = gssapi.Name(realm.service_principal, gssapi.NameType.kerberos_principal)
    ctx = gssapi.SecurityContext(name=name, creds=creds, usage="initiate", mech=SPNEGO)
    return "Negotiate " + base64.b64encode(ctx.step()).decode()


def test_negotiate_challenge_ticket_and_password(tmp_path, kerberos_realm):  # noqa: F811
    realm = kerberos_realm
    hub = start_hub(
        tmp_path, authenticator="kerberos", env=realm.env,
        config=f"c.KerberosAuthenticator.keytab = {str(realm.keytab)!r}\n"
        f"c.KerberosAuthenticator.service_principal = {realm.service_principal!r}\n"
        "c.Authenticator.allow_all = True\n",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=hub.url, timeout=30) as client:
            r = client.get("/hub/login")
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Negotiate"
            assert 'id="password_input"' in r.text  # the fallback form
            ticket = realm.kinit("alice", "alice-pw")
            r = client.get("/hub/login", headers={"Authorization": negotiate(realm, ticket)})
            assert r.status_code == 302, r.text
            assert "jupyterhub-hub-login" in r.headers.get("set-cookie", "")
        with HubSession(hub.url) as s:
            assert s.login("alice", "wrong").status_code == 403
            assert s.login("alice", "alice-pw").status_code == 302
    finally:
        hub.stop()
