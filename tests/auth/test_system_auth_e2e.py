"""The real hub (subprocess) logging people in with pam, ldap and remote-user over HTTP."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from amalthea.testing.engines.slapd import PEOPLE
from amalthea.testing.engines.unix_users import create_group, create_user, remove_group, remove_user
from amalthea.testing.hub import start_hub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def form_login(hub, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=hub.url, follow_redirects=False, timeout=30) as client:
        client.get("/hub/login")
        xsrf = client.cookies.get("_xsrf", "")
        return client.post(
            "/hub/login", data={"username": username, "password": password, "_xsrf": xsrf}
        )


def hub_user(hub, name: str) -> dict:
    resp = httpx.get(f"{hub.api_url}/users/{name}", headers=hub.admin_headers, timeout=30)
    resp.raise_for_status()
    return resp.json()


@pytest.fixture
def hub_factory(tmp_path):
    hubs = []

    def make(name: str, **kw):
        hub = start_hub(tmp_path / name, **kw)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop()


@pytest.mark.engine("pam")
def test_pam_login_through_the_hub(hub_factory, pam_test_service):
    group = create_group("amtadm")
    user = create_user("amte", groups=(group,))
    try:
        subprocess.run(["chpasswd"], input=f"{user.name}:good-pw-1\n", text=True, check=True)
        hub = hub_factory(
            "pam",
            authenticator="pam",
            config=f"c.PAMAuthenticator.service = {pam_test_service!r}\n"
            f"c.PAMAuthenticator.admin_groups = {{{group!r}}}\n"
            "c.PAMAuthenticator.allow_all = True\n",
        )
        bad = form_login(hub, user.name, "wrong")
        assert bad.status_code == 403 and "Invalid username or password" in bad.text
        good = form_login(hub, user.name, "good-pw-1")
        assert good.status_code == 302, good.text
        assert hub_user(hub, user.name)["admin"] is True
    finally:
        remove_user(user)
        remove_group(group)


@pytest.mark.engine("slapd")
def test_ldap_login_through_the_hub(hub_factory, slapd_directory):
    hub = hub_factory(
        "ldap",
        authenticator="ldap",
        config=f"c.LDAPAuthenticator.server_urls = [{slapd_directory.url!r}]\n"
        f"c.LDAPAuthenticator.bind_dn_templates = ['uid={{username}},{PEOPLE}']\n"
        "c.LDAPAuthenticator.allowed_groups = {'staff'}\n"
        "c.LDAPAuthenticator.admin_groups = {'admins'}\n",
    )
    assert form_login(hub, "alice", "alice-pw").status_code == 302
    assert hub_user(hub, "alice")["admin"] is True
    assert form_login(hub, "bob", "bob-pw").status_code == 302
    assert hub_user(hub, "bob")["admin"] is False
    refused = form_login(hub, "carol", "carol-pw")  # right password, not in an allowed group
    assert refused.status_code == 403 and "not on the list" in refused.text


@pytest.mark.engine("slapd")
def test_ldap_server_down_page(hub_factory, slapd_directory):
    from amalthea.testing.engines.slapd import free_port

    hub = hub_factory(
        "ldap-down",
        authenticator="ldap",
        config=f"c.LDAPAuthenticator.server_urls = ['ldap://127.0.0.1:{free_port()}']\n"
        "c.LDAPAuthenticator.bind_dn_templates = ['uid={username},dc=x']\n"
        "c.LDAPAuthenticator.allow_all = True\n",
    )
    resp = form_login(hub, "alice", "alice-pw")
    assert resp.status_code == 503
    assert "unreachable, try again later" in resp.text
    assert "LDAPSocketOpenError" in hub.log()  # the admin's log names the URL and error


def test_remote_user_through_the_hub(hub_factory):
    hub = hub_factory(
        "remote", authenticator="remote-user", config="c.Authenticator.allow_all = True\n"
    )
    with httpx.Client(base_url=hub.url, follow_redirects=False, timeout=30) as client:
        resp = client.get("/hub/login", headers={"X-Remote-User": "dora"})
    assert resp.status_code == 302, resp.text
    assert hub_user(hub, "dora")["name"] == "dora"


def untrusted_hub(hub_factory, name: str):
    # Only a (fictitious) front server at 10.66.0.1 is trusted; the tests talk from 127.0.0.1.
    return hub_factory(
        name,
        authenticator="remote-user",
        config="c.Authenticator.allow_all = True\n"
        "c.RemoteUserAuthenticator.trusted_proxies = ['10.66.0.1/32']\n",
    )


def test_remote_user_refused_from_untrusted_address(hub_factory):
    hub = untrusted_hub(hub_factory, "remote-untrusted")
    with httpx.Client(base_url=hub.url, follow_redirects=False, timeout=30) as client:
        plain = client.get("/hub/login", headers={"X-Remote-User": "mallory"})
        forged_xff = client.get(
            "/hub/login", headers={"X-Remote-User": "mallory", "X-Forwarded-For": "10.66.0.1"}
        )
    assert plain.status_code == 403
    assert forged_xff.status_code == 403  # the proxy appends the real peer; the hub uses the last
    assert "not in trusted_proxies" in hub.log()


def test_remote_user_forged_x_real_ip_is_refused(hub_factory):
    # The hub derives the client from the last X-Forwarded-For hop its proxy appended and never
    # reads X-Real-Ip (hub/security/forwarded.py), so a client cannot claim the front server's IP.
    hub = untrusted_hub(hub_factory, "remote-forged")
    with httpx.Client(base_url=hub.url, follow_redirects=False, timeout=30) as client:
        forged = client.get(
            "/hub/login", headers={"X-Remote-User": "mallory", "X-Real-Ip": "10.66.0.1"}
        )
        direct = httpx.get(
            hub.hub_url + "/hub/login", headers={"X-Remote-User": "mallory",
                                                 "X-Real-Ip": "10.66.0.1"}, timeout=30,
        )  # fmt: skip
    assert forged.status_code == 403
    assert direct.status_code == 403  # straight to the hub's port, no proxy in between
    assert "peer 127.0.0.1 is not in trusted_proxies" in hub.log()
