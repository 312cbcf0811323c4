"""``POST /hub/api/users/NAME/server[s/SERVER]/report``: a starting server says where it listens.

Body ``{"ip": "node12", "port": 45678}``; answers 204. See ``amalthea.hub.lifecycle.reporting``
for who gets the URL and why.

Only the server's own API token (the one the hub minted for this spawn and put in its
environment) is accepted, compared in constant time with the token in the spawner's context.
A scope check alone would not do: the owner's own tokens carry ``access:servers`` on their
server too, and could then point the proxy's route for it at any host and port the hub can
reach. Reports are taken only while the server is starting; afterwards its address is fixed.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from tornado import web

from amalthea.hub.lifecycle import ServerState
from amalthea.hub.lifecycle.reporting import takes_reports
from amalthea.hub.web.base import _AUTH_HEADER, APIHandler

log = logging.getLogger("amalthea.report")


class ReportHandler(APIHandler):
    async def post(self, name: str, server: str = "") -> None:
        server = server or ""
        label = f"{name}/{server}" if server else name
        self.need("access:servers", server=f"{name}/{server}")
        rt = self.hub.servers.get(name, server)
        spawner = rt.spawner if rt is not None else None
        expected = spawner.context.env.get("JUPYTERHUB_API_TOKEN", "") if spawner else ""
        m = _AUTH_HEADER.match(self.request.headers.get("Authorization", ""))
        given = m.group(1) if m else ""
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPError(
                403, reason=f"Only the API token of server {label} itself may report its address."
            )
        assert rt is not None and spawner is not None
        if rt.state is not ServerState.PENDING:
            raise web.HTTPError(
                409, reason=f"Server {label} is {rt.state.value}, not starting: address is fixed."
            )
        if not takes_reports(spawner):
            raise web.HTTPError(
                400, reason=f"The spawner of {label} ({type(spawner).__name__}) takes no reports."
            )
        ip, port = _address(self.get_json_body())
        spawner.report_address(ip, port)  # type: ignore[attr-defined]
        log.info("server %s reported its address %s:%s", label, ip, port)
        self.set_status(204)
        self.finish()


def _address(body: Any) -> tuple[str, int]:
    if not isinstance(body, dict):
        raise web.HTTPError(400, reason='The body must be a JSON object {"ip": ..., "port": ...}')
    ip, port = body.get("ip"), body.get("port")
    if not isinstance(ip, str) or not ip or len(ip) > 255 or any(c.isspace() for c in ip):
        raise web.HTTPError(400, reason=f"'ip' must be a host name or address; got {ip!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise web.HTTPError(400, reason=f"'port' must be a number from 1 to 65535; got {port!r}")
    return ip, port


handlers = [
    (r"/users/([^/]+)/server/report", ReportHandler),
    (r"/users/([^/]+)/servers/([^/]+)/report", ReportHandler),
]
