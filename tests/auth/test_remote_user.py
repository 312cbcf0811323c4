"""RemoteUserAuthenticator: the header is believed only from trusted proxy addresses."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from amalthea.auth.base import AuthError, LoginRequest
from amalthea.auth.remote_user import RemoteUserAuthenticator


def request(ip: str, **headers: str) -> LoginRequest:
    return LoginRequest(headers=headers, remote_ip=ip)


async def test_accepted_from_trusted_proxy():
    auth = RemoteUserAuthenticator(allow_all=True)
    await auth.startup()
    assert auth.login_kind == "header"
    result = await auth.login(request("127.0.0.1", **{"X-Remote-User": "Alice"}))
    assert result is not None and result.name == "alice" and result.groups is None


async def test_refused_from_other_address_and_logged(caplog):
    auth = RemoteUserAuthenticator(allow_all=True)
    with pytest.raises(AuthError) as err:
        await auth.login(request("10.1.2.3", **{"X-Remote-User": "alice"}))
    assert err.value.status == 403
    assert "10.1.2.3" in err.value.log_message and "trusted_proxies" in err.value.log_message


async def test_header_case_and_remote_user_style_and_groups():
    auth = RemoteUserAuthenticator(
        header_name="REMOTE_USER",
        groups_header="X-Remote-Groups",
        trusted_proxies=["10.0.0.0/8"],
        admin_groups={"staff"},
        allow_all=True,
    )
    result = await auth.login(
        request("10.9.9.9", remote_user="bob", **{"x-remote-groups": "staff; physics;"})
    )
    assert result.name == "bob" and result.groups == ["physics", "staff"] and result.admin


async def test_dash_and_underscore_are_not_confused():
    # A client-sent X_Remote_User must never stand in for the proxy's X-Remote-User.
    auth = RemoteUserAuthenticator(allow_all=True)
    with pytest.raises(AuthError) as err:
        await auth.login(request("127.0.0.1", X_Remote_User="mallory"))
    assert err.value.status == 401


async def test_ipv4_mapped_and_ipv6():
    auth = RemoteUserAuthenticator(trusted_proxies=["127.0.0.1/32", "::1/128"], allow_all=True)
    assert (await auth.login(request("::ffff:127.0.0.1", **{"X-Remote-User": "a"}))).name == "a"
    assert (await auth.login(request("::1", **{"X-Remote-User": "b"}))).name == "b"
    with pytest.raises(AuthError):
        await auth.login(request("not-an-ip", **{"X-Remote-User": "c"}))
    with pytest.raises(AuthError):
        await auth.login(request("", **{"X-Remote-User": "c"}))


async def test_invalid_username_from_header():
    auth = RemoteUserAuthenticator(allow_all=True)
    with pytest.raises(AuthError) as err:
        await auth.login(request("127.0.0.1", **{"X-Remote-User": "alice,bob"}))
    assert err.value.status == 400


async def test_config_validation():
    with pytest.raises(TraitError, match="not an address"):
        RemoteUserAuthenticator(trusted_proxies=["localhost"])
    with pytest.raises(ValueError, match="trusted_proxies is empty"):
        await RemoteUserAuthenticator(trusted_proxies=[]).startup()


async def test_real_http_request_through_tornado():
    """The header and peer address as a real Tornado server sees them on 127.0.0.1."""
    import tornado.httpclient
    import tornado.web
    from tornado.testing import bind_unused_port

    auth = RemoteUserAuthenticator(allow_all=True)
    seen: dict[str, object] = {}

    class Login(tornado.web.RequestHandler):
        async def get(self) -> None:
            req = LoginRequest(headers=self.request.headers, remote_ip=self.request.remote_ip)
            try:
                result = await auth.login(req)
                seen["name"] = result.name
                self.write(result.name)
            except AuthError as e:
                self.set_status(e.status)
                self.write(e.user_message)

    sock, port = bind_unused_port()
    server = tornado.httpserver.HTTPServer(tornado.web.Application([("/login", Login)]))
    server.add_sockets([sock])
    try:
        client = tornado.httpclient.AsyncHTTPClient()
        resp = await client.fetch(
            f"http://127.0.0.1:{port}/login", headers={"X-Remote-User": "carol"}
        )
        assert resp.body == b"carol"
    finally:
        server.stop()
