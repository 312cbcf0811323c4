"""``/proxy``: read the routing table, force a route sync, repoint the proxy (protocol §5.9)."""

from __future__ import annotations

from typing import Any

from amalthea.hub.web.api._support import RestHandler, bad


class ProxyHandler(RestHandler):
    async def get(self) -> None:
        await self.need_any(["proxy"])
        page, env = self.page()
        try:
            routes = await self.hub.proxy.get_all_routes()
        except Exception as e:
            raise bad(f"The proxy did not answer: {e}", 502) from None
        keys = sorted(routes)
        chosen = keys[page.offset : page.offset + page.limit]
        table: dict[str, Any] = {
            k: {
                "routespec": k,
                "target": routes[k].get("target"),
                "data": routes[k].get("data", {}),
            }
            for k in chosen
        }
        self.write_page(table, page, len(keys), env)

    async def post(self) -> None:
        await self.need_any(["proxy"])
        await self._sync()
        self.write_empty(200)

    async def patch(self, *args: Any) -> None:
        await self.need_any(["proxy"])
        body = self.body_object({"api_url", "auth_token"}, required=True)
        for key in ("api_url", "auth_token"):
            if key in body and not isinstance(body[key], str):
                raise bad(f"{key} must be a string")
        proxy = self.hub.proxy
        url = body.get("api_url", proxy.api_url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise bad(f"api_url must be an http(s) URL, not {url[:80]!r}")
        old = (proxy.api_url, proxy.token)
        proxy.api_url, proxy.token = url, body.get("auth_token", proxy.token)
        try:
            await proxy.get_all_routes()
        except Exception as e:
            # keep talking to the proxy that works: a typo must not cut every user off
            proxy.api_url, proxy.token = old
            raise bad(
                f"The proxy at {url[:200]} did not accept the new settings ({e}); "
                "kept the previous proxy"
            ) from None
        await self._sync()
        self.write_empty(200)

    async def _sync(self) -> None:
        try:
            await self.hub.servers.sync_routes()
            services = self.hub.extras.get("services")
            if services is not None:
                await services.add_routes()
        except Exception as e:
            raise bad(f"Could not sync routes with the proxy: {e}", 502) from None


handlers = [(r"/proxy", ProxyHandler)]
