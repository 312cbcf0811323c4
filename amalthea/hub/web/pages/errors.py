"""``/hub/error/CODE`` (the proxy's error target) and the hub's own 404 page."""

from __future__ import annotations

from http.client import responses

from tornado import web

from amalthea.hub.web.base import PageHandler


class ProxyErrorHandler(PageHandler):
    """The proxy fetches this and relays the body with the real status, so answer 200."""

    def get(self, code: str) -> None:
        status = int(code) if code.isdigit() and 400 <= int(code) < 600 else 500
        message = {
            503: "The server you asked for is not answering. It may be starting or it may "
                 "have stopped; go to the home page to start it again.",
            404: "Nothing here. The link may be wrong or the server it pointed to is gone.",
        }.get(status, "")  # fmt: skip
        self.render_template("error.html", status=200, status_code=status,
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
