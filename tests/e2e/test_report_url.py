"""The report URL through a real hub, without a batch system.

A spawner with ``report_address`` (here: the local-shared spawner, told to learn its address
only from the report) gets ``AMALTHEA_REPORT_URL``; the real amalthea-singleuser POSTs its
address there with its own token, and only then does the spawn go on. Other tokens, even the
owner's and an admin's, are refused.
"""

from __future__ import annotations

import httpx
import pytest

from amalthea.testing.session import HubSession

pytestmark = pytest.mark.slow

CONFIG = """
import asyncio
from amalthea.spawners.base import ServerAddress
from amalthea.spawners.local import LocalSharedSpawner

class ReportedAddressSpawner(LocalSharedSpawner):
    # the address returned by start() is only what the server reported
    async def start(self):
        self.reported = asyncio.get_running_loop().create_future()
        await super().start()
        ip, port = await asyncio.wait_for(self.reported, 60)
        self.log.info("REPORTED %s:%s", ip, port)
        return ServerAddress(ip, port)

    def report_address(self, ip, port):
        if not self.reported.done():
            self.reported.set_result((ip, port))

c.Amalthea.spawner_class = ReportedAddressSpawner
"""


def test_server_reports_its_address(amalthea_hub_factory):
    hub = amalthea_hub_factory(config=CONFIG)
    with HubSession(hub.url) as s:
        assert s.login("erin").status_code == 302
        events = s.start_server()
        assert events[-1].get("ready"), events
        assert s.open_server("lab").status_code == 200  # OAuth through the hub, then the server
        assert s.open_server("api/status").status_code == 200
        assert "REPORTED 127.0.0.1:" in hub.log()
        assert "server erin reported its address 127.0.0.1:" in hub.log()

        # a running server's address is fixed, and no other token may report for it
        token = httpx.post(f"{hub.api_url}/users/erin/tokens", headers=hub.admin_headers,
                           json={"note": "not the server"}).json()["token"]  # fmt: skip
        for headers in ({"Authorization": f"token {token}"}, hub.admin_headers):
            r = httpx.post(f"{hub.api_url}/users/erin/server/report", headers=headers,
                           json={"ip": "10.9.9.9", "port": 80})  # fmt: skip
            assert r.status_code == 403, r.text
            assert r.json()["message"] == (
                "Only the API token of server erin itself may report its address."
            )
        r = httpx.post(f"{hub.api_url}/users/erin/server/report", json={"ip": "x", "port": 1})
        assert r.status_code == 403
        assert s.open_server("api/status").status_code == 200
        assert s.stop_server().status_code in (202, 204)
