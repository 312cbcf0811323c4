"""LDAPAuthenticator against a real slapd on 127.0.0.1 (see amalthea.testing.engines.slapd)."""

from __future__ import annotations

import asyncio
import time

import pytest

from amalthea.auth.base import AuthError, LoginRequest
from amalthea.auth.ldap import LDAPAuthenticator
from amalthea.testing.engines.slapd import GROUPS, PEOPLE, READER_DN, READER_PASSWORD, free_port

pytestmark = [pytest.mark.engine("slapd"), pytest.mark.timeout(60)]


def form(username: str, password: str) -> LoginRequest:
    return LoginRequest(form={"username": username, "password": password}, remote_ip="127.0.0.1")


def template_auth(directory, **kw) -> LDAPAuthenticator:
    kw.setdefault("server_urls", [directory.url])
    return LDAPAuthenticator(bind_dn_templates=[f"uid={{username}},{PEOPLE}"], allow_all=True, **kw)


def search_auth(directory, **kw) -> LDAPAuthenticator:
    return LDAPAuthenticator(
        server_urls=[directory.url],
        lookup_dn=True,
        search_bind_dn=READER_DN,
        search_bind_password=READER_PASSWORD,
        user_search_base=PEOPLE,
        group_search_base=GROUPS,
        allow_all=True,
        **kw,
    )


async def test_bind_template_with_memberof_groups(slapd_directory):
    auth = template_auth(slapd_directory, admin_groups={"admins"})
    await auth.startup()
    result = await auth.login(form("alice", "alice-pw"))
    assert result is not None
    assert result.name == "alice"
    assert result.groups == ["admins", "staff"]
    assert result.admin is True
    assert result.user_info == {"dn": f"uid=alice,{PEOPLE}"}

    bob = await auth.login(form("bob", "bob-pw"))
    assert bob is not None and bob.groups == ["staff"] and bob.admin is False


async def test_wrong_password_unknown_user_and_empty_password(slapd_directory):
    auth = template_auth(slapd_directory)
    assert await auth.login(form("alice", "wrong")) is None
    assert await auth.login(form("nobody", "alice-pw")) is None
    # an empty password would be an unauthenticated bind, which LDAP reports as success
    assert await auth.login(form("alice", "")) is None


async def test_second_template_is_tried(slapd_directory):
    auth = LDAPAuthenticator(
        server_urls=[slapd_directory.url],
        bind_dn_templates=[
            "uid={username},ou=nowhere,dc=hub,dc=test",
            f"uid={{username}},{PEOPLE}",
        ],
        allow_all=True,
    )
    assert (await auth.login(form("carol", "carol-pw"))).name == "carol"


async def test_search_then_bind_with_group_search(slapd_directory):
    auth = search_auth(slapd_directory, admin_groups={"admins"}, username_attribute="uid")
    await auth.startup()
    alice = await auth.login(form("alice", "alice-pw"))
    assert alice is not None and alice.groups == ["admins", "staff"] and alice.admin
    carol = await auth.login(form("carol", "carol-pw"))
    assert carol is not None and carol.groups == [] and not carol.admin
    assert await auth.login(form("carol", "alice-pw")) is None


async def test_allowed_groups_policy(slapd_directory):
    auth = search_auth(slapd_directory, allowed_groups={"staff"})
    auth.allow_all = False
    assert (await auth.login(form("bob", "bob-pw"))).name == "bob"
    with pytest.raises(AuthError) as refused:
        await auth.login(form("carol", "carol-pw"))
    assert "not on the list" in refused.value.user_message


async def test_filter_injection_is_escaped(slapd_directory):
    auth = search_auth(slapd_directory)
    assert await auth.login(form("*", "alice-pw")) is None
    assert await auth.login(form("alice)(uid=*", "alice-pw")) is None
    tmpl = template_auth(slapd_directory)
    assert await tmpl.login(form("alice,ou=people", "alice-pw")) is None


async def test_search_account_wrong_password_is_a_clear_config_error(slapd_directory):
    auth = search_auth(slapd_directory)
    auth.search_bind_password = "wrong"
    with pytest.raises(AuthError) as err:
        await auth.login(form("alice", "alice-pw"))
    assert "misconfigured" in err.value.user_message
    assert READER_DN in err.value.log_message and "invalidCredentials" in err.value.log_message


async def test_ldaps_and_starttls(slapd_directory):
    ldaps = template_auth(
        slapd_directory,
        server_urls=[slapd_directory.ldaps_url],
        tls_ca_file=slapd_directory.ca_file,
    )
    assert (await ldaps.login(form("bob", "bob-pw"))).name == "bob"
    starttls = template_auth(slapd_directory, starttls=True, tls_ca_file=slapd_directory.ca_file)
    assert (await starttls.login(form("bob", "bob-pw"))).name == "bob"
    # without the test CA the self-signed certificate is refused: counts as unreachable
    untrusted = template_auth(slapd_directory, server_urls=[slapd_directory.ldaps_url])
    with pytest.raises(AuthError) as err:
        await untrusted.login(form("bob", "bob-pw"))
    assert err.value.status == 503 and slapd_directory.ldaps_url in err.value.log_message


async def test_server_down_gives_clear_error_quickly(slapd_directory, caplog):
    dead = f"ldap://127.0.0.1:{free_port()}"
    auth = template_auth(slapd_directory, server_urls=[dead])
    started = time.monotonic()
    with pytest.raises(AuthError) as err:
        await auth.login(form("alice", "alice-pw"))
    assert time.monotonic() - started < 3
    assert err.value.user_message == "The login service is unreachable, try again later."
    assert err.value.status == 503
    assert dead in err.value.log_message and "LDAPSocketOpenError" in err.value.log_message


async def test_failover_to_the_next_server(slapd_directory):
    dead = f"ldap://127.0.0.1:{free_port()}"
    auth = template_auth(slapd_directory, server_urls=[dead, slapd_directory.url])
    assert (await auth.login(form("alice", "alice-pw"))).name == "alice"


async def test_hung_server_times_out_and_loop_stays_responsive(slapd_directory, silent_tcp_port):
    auth = template_auth(
        slapd_directory,
        server_urls=[f"ldap://127.0.0.1:{silent_tcp_port}"],
        receive_timeout=30.0,  # the overall bound must win over a long socket timeout
        timeout=1.5,
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(AuthError) as err:
            await auth.login(form("alice", "alice-pw"))
    finally:
        task.cancel()
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 3
    assert ticks > 15  # the event loop kept running while ldap3 waited
    assert "did not finish within 1.5 s" in err.value.log_message
    assert str(silent_tcp_port) in err.value.log_message


async def test_hung_server_receive_timeout(slapd_directory, silent_tcp_port):
    url = f"ldap://127.0.0.1:{silent_tcp_port}"
    auth = template_auth(slapd_directory, server_urls=[url], receive_timeout=1.0, timeout=10)
    started = time.monotonic()
    with pytest.raises(AuthError) as err:
        await auth.login(form("alice", "alice-pw"))
    assert time.monotonic() - started < 4
    assert url in err.value.log_message


async def test_startup_validation():
    with pytest.raises(ValueError, match="server_urls is empty"):
        await LDAPAuthenticator(bind_dn_templates=["uid={username},dc=x"]).startup()
    with pytest.raises(ValueError, match="bind_dn_templates"):
        await LDAPAuthenticator(server_urls=["ldap://127.0.0.1"]).startup()
    with pytest.raises(ValueError, match="ldap:// or ldaps://"):
        await LDAPAuthenticator(
            server_urls=["127.0.0.1"], bind_dn_templates=["uid={username}"]
        ).startup()
    with pytest.raises(Exception, match="has no"):
        LDAPAuthenticator(bind_dn_templates=["uid=alice,dc=x"])
