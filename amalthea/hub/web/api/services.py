"""``/services`` and ``/services/NAME`` (protocol §5.8, §10): list, read, add/remove at runtime."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from amalthea.hub import rbac
from amalthea.hub.services import ServiceError
from amalthea.hub.store.models import Service
from amalthea.hub.web.api._support import RestHandler, bad


class ServiceAPI(RestHandler):
    def _model(self, row: Service) -> dict[str, Any]:
        held = self.held
        model: dict[str, Any] = {"kind": "service", "name": row.name}
        if rbac.covers(held, "read:services", service=row.name):
            manager = self.hub.extras.get("services")
            prefix = manager.prefix(row.name) if manager is not None and row.url else ""
            model.update(
                admin=row.admin, url=row.url or "", prefix=prefix, command=row.command or [],
                pid=(manager.pid(row.name) if manager is not None else None) or 0,
                info=row.info or {}, display=row.display,
            )  # fmt: skip
        if rbac.covers(held, "read:roles:services", service=row.name):
            model["roles"] = sorted(
                {r.name for r in row.roles} | ({"admin"} if row.admin else set())
            )
        return model

    async def _row(self, name: str) -> Service:
        async with self.hub.db.session() as s:
            row = (await s.execute(select(Service).where(Service.name == name))).scalar()
        if row is None:
            raise bad(f"No such service {name[:80]}", 404)
        return row


class ServiceListHandler(ServiceAPI):
    async def get(self) -> None:
        flt = rbac.filters(self.held, "list:services")
        if flt is None or not (flt.unfiltered or flt.services):
            raise bad("Action is not authorized with current scopes; requires any of "
                      "[list:services]", 403)  # fmt: skip
        query = select(Service).order_by(Service.id)
        if not flt.unfiltered:
            query = query.where(Service.name.in_(flt.services))
        async with self.hub.db.session() as s:
            rows = list((await s.execute(query)).scalars())
        self.write_json({row.name: self._model(row) for row in rows})


class ServiceHandler(ServiceAPI):
    async def get(self, name: str) -> None:
        await self.need_any(["read:services", "read:services:name", "read:roles:services"],
                            service=name)  # fmt: skip
        self.write_json(self._model(await self._row(name)))

    async def post(self, name: str) -> None:
        await self.need_any(["admin:services"], service=name)
        body = self.body_object({
            "admin", "url", "oauth_client_allowed_scopes", "api_token", "info", "display",
            "oauth_no_confirm", "oauth_client_id", "oauth_redirect_uri", "user", "cwd",
            "environment", "command", "timeout",
        })  # fmt: skip
        if body.get("admin") and not self.who.admin:
            raise bad("Only admins can create admin services", 403)
        missing = rbac.not_covered(self.held, rbac.expand(body.get("oauth_client_allowed_scopes")
                                                          or []))  # fmt: skip
        if missing:
            raise bad(f"Cannot give a service scopes you don't hold: {missing}")
        manager = self.hub.extras.get("services")
        if manager is None:
            raise bad("Services are not available in this hub", 501)
        try:
            await manager.add_runtime({**body, "name": name})
        except ServiceError as e:
            status = 409 if "already exists" in str(e) else 400
            raise bad(str(e), status) from None
        self.write_json(self._model(await self._row(name)), 201)

    async def delete(self, name: str) -> None:
        await self.need_any(["admin:services"], service=name)
        row = await self._row(name)
        if row.from_config:
            raise bad(f"Service {name} is defined in config and cannot be deleted via the API", 405)
        await self.hub.extras["services"].remove_runtime(name)
        self.forget_permissions()
        self.write_empty(200)


handlers = [
    (r"/services", ServiceListHandler),
    (r"/services/([^/]+)", ServiceHandler),
]
