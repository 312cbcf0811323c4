"""``GET /users/NAME/notices`` (Amalthea extension): warnings for a user's servers, e.g. the idle
culler's "will be stopped in N minutes". Pages and the single-user extension may poll it."""

from __future__ import annotations

from amalthea.hub.web.api._support import RestHandler


class NoticesHandler(RestHandler):
    async def get(self, name: str) -> None:
        await self.need_any(["read:servers"], user=name)
        culler = self.hub.extras.get("culler")
        notices = [] if culler is None else [
            n.as_dict() for (user, _), n in sorted(culler.notices.items()) if user == name
        ]  # fmt: skip
        self.write_json({"notices": notices})


handlers = [(r"/users/([^/]+)/notices", NoticesHandler)]
