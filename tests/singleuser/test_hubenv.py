"""Reading the JUPYTERHUB_* environment (amalthea.singleuser.hubenv)."""

import json

import pytest

from amalthea.singleuser.hubenv import HubEnvironmentError, read_hub_environment

BASE = {
    "JUPYTERHUB_API_TOKEN": "t" * 32,
    "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice-gpu",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api/",
    "JUPYTERHUB_USER": "alice",
    "JUPYTERHUB_SERVER_NAME": "gpu",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:0/user/alice/gpu/",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/gpu/",
    "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/alice/gpu/oauth_callback",
    "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(["access:servers!server=alice/gpu"]),
    "JUPYTERHUB_BASE_URL": "/",
}


def test_reads_the_contract() -> None:
    env = read_hub_environment(BASE)
    assert (env.ip, env.port) == ("127.0.0.1", 0)
    assert env.api_url == "http://127.0.0.1:8081/hub/api"
    assert env.service_prefix == "/user/alice/gpu/"
    assert env.hub_prefix == "/hub/"
    assert env.callback_path == "oauth_callback"
    assert env.access_scopes == ("access:servers!server=alice/gpu",)
    assert env.activity_url == "http://127.0.0.1:8081/hub/api/users/alice/activity"
    assert env.activity_interval == 300
    assert env.default_url == "/lab"
    assert (env.cookie_name, env.cookie_path) == ("jupyterhub-user-alice-gpu", "/user/alice/gpu/")


def test_optional_values_and_fallbacks() -> None:
    env = read_hub_environment(
        {
            **BASE,
            "JUPYTERHUB_API_TOKEN": "",
            "JPY_API_TOKEN": "legacy-token",
            "JUPYTERHUB_SERVICE_PREFIX": "",
            "JUPYTERHUB_SERVICE_URL": "http://:8888/user/alice/gpu",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": "",
            "JUPYTERHUB_ACTIVITY_INTERVAL": "2.5",
            "JUPYTERHUB_DEFAULT_URL": "/tree",
            "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "1",
            "JUPYTERHUB_HOST": "https://hub.example/",
            "AMALTHEA_REPORT_URL": "http://hub/report",
            "JUPYTERHUB_DEBUG": "1",
        }
    )
    assert env.api_token == "legacy-token"
    assert (env.ip, env.port, env.service_prefix) == ("", 8888, "/user/alice/gpu/")
    assert env.access_scopes == ("access:servers!server=alice/gpu", "access:servers!user=alice")
    assert env.activity_interval == 2.5
    assert env.default_url == "/tree"
    assert (env.cookie_name, env.cookie_path) == ("__Host-jupyterhub-user-alice-gpu", "/")
    assert env.hub_host == "https://hub.example"
    assert env.report_url == "http://hub/report"
    assert env.debug and not read_hub_environment(BASE).debug


def test_missing_variables_are_all_named() -> None:
    env = {
        k: v for k, v in BASE.items() if k not in {"JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_CLIENT_ID"}
    }
    with pytest.raises(HubEnvironmentError, match="JUPYTERHUB_SERVICE_URL, JUPYTERHUB_CLIENT_ID"):
        read_hub_environment(env)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("JUPYTERHUB_OAUTH_ACCESS_SCOPES", "not json", "not valid JSON"),
        ("JUPYTERHUB_OAUTH_ACCESS_SCOPES", '{"a": 1}', "JSON list of strings"),
        ("JUPYTERHUB_ACTIVITY_INTERVAL", "soon", "number of seconds"),
        ("JUPYTERHUB_ACTIVITY_INTERVAL", "-1", "must be positive"),
        ("JUPYTERHUB_SERVICE_URL", "ftp://x/", "not an http"),
        ("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:99999/", "bad port"),
    ],
)
def test_malformed_values(key: str, value: str, message: str) -> None:
    with pytest.raises(HubEnvironmentError, match=message):
        read_hub_environment({**BASE, key: value})


def test_unix_socket_service_url() -> None:
    env = read_hub_environment(
        {**BASE, "JUPYTERHUB_SERVICE_URL": "http+unix://%2Ftmp%2Fsu.sock/user/alice/gpu/"}
    )
    assert (env.sock, env.ip, env.port) == ("/tmp/su.sock", "", 0)
    assert env.service_prefix == "/user/alice/gpu/"
