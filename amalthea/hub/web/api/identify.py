"""``GET /hub/api/user``: who am I, with my expanded scopes (protocol §5.1, every client uses it)."""

from __future__ import annotations

from tornado import web

from amalthea.hub.clock import isoformat
from amalthea.hub.web.base import APIHandler


class IdentifyHandler(APIHandler):
    def get(self) -> None:
        who = self.current_user
        if who is None:
            raise web.HTTPError(403)  # message null, as JupyterHub answers here
        model: dict[str, object] = {"name": who.name, "kind": who.kind, "admin": who.admin}
        if who.kind == "user":
            model.update(
                groups=list(who.groups), user_info=who.user_info,
                last_activity=isoformat(who.last_activity),
            )  # fmt: skip
        model.update(
            token_id=f"a{who.token_id}" if who.token_id is not None else None,
            session_id=who.session_id,
            scopes=sorted(who.scopes),
        )
        self.write_json(model)


priority = 10
handlers = [(r"/user", IdentifyHandler)]
