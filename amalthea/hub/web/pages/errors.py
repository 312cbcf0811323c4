"""``/hub/error/CODE`` (the proxy's error target) and the hub's own 404 page."""

from __future__ import annotations

from http.client import responses

from tornado import web

from amalthea.hub.web.base import PageHandler

#: what the proxy's error target says per status; a code not listed here is answered as 404
#: (someone typed the URL: there is nothing more useful to say about code 999)
_PROXY_MESSAGES = {
    404: "Nothing here. The link may be wrong or the server it pointed to is gone.",
    424: "The server for this address is not running. Go to the home page to start it.",
    500: "The server for this address failed while answering. Try again; if it keeps "
         "happening, restart the server from the home page.",
    502: "The server for this address did not answer properly. It may have crashed; go to "
         "the home page to restart it.",
    503: "The server you asked for is not answering. It may be starting or it may have "
         "stopped; go to the home page to start it again.",
    504: "The server for this address took too long to answer. It may be busy; try again "
         "in a moment.",
}  # fmt: skip


class ProxyErrorHandler(PageHandler):
    """The proxy fetches this and relays the body with the real status, so answer 200.
    No request id on the page: the hub did not fail, the user's server did."""

    def get(self, code: str) -> None:
        status = int(code) if code.isdigit() and len(code) == 3 else 404
        message = _PROXY_MESSAGES.get(status)
        if message is None:
            status, message = 404, _PROXY_MESSAGES[404]
        self.render_template("error.html", status=200, status_code=status, upstream=True,
                             status_message=responses.get(status, "Error"), message=message)  # fmt: skip


class NotFoundHandler(PageHandler):
    def prepare(self) -> None:  # type: ignore[override]
        raise web.HTTPError(404, reason="There is no page at this address.")


class HealthHandler(PageHandler):
    async def prepare(self) -> None:
        pass

    def get(self) -> None:
        self.finish()

    head = get


priority = 5
handlers = [(r"error/(\d+)", ProxyErrorHandler), (r"health", HealthHandler)]
