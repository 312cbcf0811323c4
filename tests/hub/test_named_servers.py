"""Named servers: start/stop through the API, routes and env per server, listed on the home page."""

from __future__ import annotations

import json
import sys

import httpx

from amalthea.testing.session import HubSession

FAKE = f'c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]\n'


def test_named_server_lifecycle(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=FAKE + "c.Amalthea.allow_named_servers = True\n")
    with HubSession(hub.url) as s:
        s.login("gus")
        assert s.start_server("gpu")[-1]["url"] == "/user/gus/gpu/"
        r = s.client.get("/user/gus/gpu/hello", headers=hub.admin_headers)
        assert r.status_code == 200 and r.json()["path"] == "/user/gus/gpu/hello"
        env = json.loads((hub.data_dir / "users" / "gus" / "hub-env.json").read_text())
        assert env["JUPYTERHUB_SERVER_NAME"] == "gpu"
        assert env["JUPYTERHUB_CLIENT_ID"] == "jupyterhub-user-gus-gpu"
        assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/gus/gpu/"
        home = s.client.get("/hub/home")
        assert home.status_code == 200 and "gpu" in home.text and 'id="stop-gpu"' in home.text
        assert s.api("POST", "/users/gus/servers/Bad_Name").status_code == 400
        assert s.stop_server("gpu").status_code in (202, 204)
        r = s.api("DELETE", "/users/gus/servers/gpu", json={"remove": True})
        assert r.status_code == 204
        assert s.api("DELETE", "/users/gus/server", json={"remove": True}).status_code == 400
        r = httpx.get(f"{hub.url}/user/gus/gpu/hello", headers=hub.admin_headers)
        assert r.status_code in (302, 424)
