"""Profiles through a real hub: the spawn form and the REST API refuse and accept alike.

alice is in ml-team, bob is not. The "gpu" profile is only for ml-team: bob sees no such
choice on the spawn page, and picking it anyway (forged form post or API call) is refused with
400 and the same message, before anything starts. Accepted choices reach the spawner as
settings (the profile's ``environment`` and an option overriding ``default_url``), which the
kernel sees in its environment.
"""

from __future__ import annotations

import html
import time

import httpx
import pytest

from amalthea.testing.session import HubSession, run_code

pytestmark = pytest.mark.slow

CONFIG = """
c.Amalthea.profiles = [
    {"slug": "small", "display_name": "Small", "default": True,
     "spawner_overrides": {"environment": {"PROFILE_MARK": "small"}}},
    {"slug": "gpu", "display_name": "GPU node", "allowed_groups": ["ml-team"],
     "description": "for the ML team",
     "spawner_overrides": {"environment": {"PROFILE_MARK": "gpu"}},
     "options": {
         "ui": {"type": "choice", "choices": ["/lab", "/tree"], "default": "/lab",
                "display_name": "Interface", "override": "default_url"},
         "wait": {"type": "int", "min": 30, "max": 300, "default": 60, "override": "http_timeout"}}},
]
"""
REFUSED = "profile 'gpu' is only for members of: ml-team"


@pytest.fixture
def hub(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=CONFIG)
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as api:
        for name in ("alice", "bob"):
            assert api.post(f"/users/{name}").status_code in (201, 409)
        assert api.post("/groups/ml-team").status_code in (201, 409)
        r = api.post("/groups/ml-team/users", json={"users": ["alice"]})
        assert r.status_code == 200, r.text
    return hub


def server_model(hub, name: str) -> dict:
    r = httpx.get(f"{hub.api_url}/users/{name}", headers=hub.admin_headers)
    return r.json().get("servers", {}).get("", {})


def wait_ready(hub, name: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = server_model(hub, name)
        if server.get("ready"):
            return server
        time.sleep(0.2)
    raise AssertionError(
        f"server of {name} not ready: {server_model(hub, name)}\n{hub.log()[-3000:]}"
    )


def test_api_refuses_and_accepts(hub):
    with HubSession(hub.url) as bob:
        assert bob.login("bob").status_code == 302
        r = bob.api("POST", "/users/bob/server", json={"user_options": {"profile": "gpu"}})
        assert r.status_code == 400, r.text
        assert r.json()["message"] == REFUSED
        # older clients send the options as the whole body: same check
        r = bob.api("POST", "/users/bob/server", json={"profile": "gpu"})
        assert (r.status_code, r.json()["message"]) == (400, REFUSED)
        r = bob.api("POST", "/users/bob/server", json={"user_options": {"profile": "huge"}})
        assert r.status_code == 400
        assert r.json()["message"] == "there is no profile 'huge'; choose one of: small"
        r = bob.api("POST", "/users/bob/server", json={"user_options": {"flavour": "x"}})
        assert r.status_code == 400 and "has no option 'flavour'" in r.json()["message"]
        assert not server_model(hub, "bob").get("pending")  # nothing was started
        # an admin starting bob's server gets bob's profiles, not the admin's
        r = httpx.post(f"{hub.api_url}/users/bob/server", headers=hub.admin_headers,
                       json={"user_options": {"profile": "gpu"}})  # fmt: skip
        assert (r.status_code, r.json()["message"]) == (400, REFUSED)

        r = bob.api("POST", "/users/bob/server", json={"user_options": {"profile": "small"}})
        assert r.status_code in (201, 202), r.text
        server = wait_ready(hub, "bob")
        assert server["user_options"] == {"profile": "small"}
        assert bob.stop_server().status_code in (202, 204)


def test_api_checks_option_values(hub):
    with HubSession(hub.url) as alice:
        assert alice.login("alice").status_code == 302
        bad = {"profile": "gpu", "wait": 1000}
        r = alice.api("POST", "/users/alice/server", json={"user_options": bad})
        assert r.status_code == 400
        assert (
            r.json()["message"]
            == "option 'wait' of profile 'gpu' must be between 30 and 300; got 1000"
        )
        r = alice.api("POST", "/users/alice/server", json={"user_options": {"profile": "gpu", "ui": "/x"}})  # fmt: skip
        assert r.status_code == 400
        assert "must be one of: /lab, /tree" in r.json()["message"]


def test_form_offers_only_entitled_profiles_and_refuses_forged_choice(hub):
    with HubSession(hub.url) as bob:
        assert bob.login("bob").status_code == 302
        r = bob.client.get("/hub/spawn")
        assert r.status_code == 200, r.text
        assert 'value="small"' in r.text and 'value="gpu"' not in r.text
        r = bob.client.post("/hub/spawn", data={"_xsrf": bob.xsrf, "profile": "gpu"})
        assert r.status_code == 400
        assert REFUSED in html.unescape(r.text)
        assert 'name="profile"' in r.text  # the form again, to choose something allowed
        assert not server_model(hub, "bob").get("pending")


def test_form_choice_reaches_the_spawner(hub):
    with HubSession(hub.url) as alice:
        assert alice.login("alice").status_code == 302
        r = alice.client.get("/hub/spawn")
        assert 'value="gpu"' in r.text and 'value="small"' in r.text
        form = {"_xsrf": alice.xsrf, "profile": "gpu", "gpu--ui": "/tree", "gpu--wait": "120"}
        r = alice.client.post("/hub/spawn", data=form)
        assert r.status_code == 302, r.text
        server = wait_ready(hub, "alice")
        assert server["user_options"] == {"profile": "gpu", "ui": "/tree", "wait": 120}
        token = httpx.post(f"{hub.api_url}/users/alice/tokens", headers=hub.admin_headers,
                           json={"note": "profiles test"}).json()["token"]  # fmt: skip
        code = "import os; print(os.environ['PROFILE_MARK'], os.environ['JUPYTERHUB_DEFAULT_URL'])"
        _, out = run_code(hub.url, "/user/alice/", {"Authorization": f"token {token}"}, code)
        assert out.split() == ["gpu", "/tree"]
        # the form remembers the last choice
        assert alice.stop_server().status_code in (202, 204)
        r = alice.client.get("/hub/spawn")
        assert 'value="gpu" checked' in r.text
        assert '<option value="/tree" selected>' in r.text
        # no options = the last choice, checked again: a withdrawn entitlement is not kept
        r = httpx.request("DELETE", f"{hub.api_url}/groups/ml-team/users",
                          headers=hub.admin_headers, json={"users": ["alice"]})  # fmt: skip
        assert r.status_code == 200, r.text
        r = alice.api("POST", "/users/alice/server")
        assert (r.status_code, r.json()["message"]) == (400, REFUSED)
