"""``/hub/token``: list, create and revoke one's API tokens (protocol §11.8).

The page renders the list server-side; creating and revoking go through the REST API
(``/hub/api/users/NAME/tokens``) with the page's XSRF token, so the API's rules apply unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import delete, select

from amalthea.hub.clock import isoformat, utcnow
from amalthea.hub.store.models import APIToken, OAuthClient
from amalthea.hub.web.base import PageHandler, authenticated


class TokenPageHandler(PageHandler):
    @authenticated
    async def get(self) -> None:
        who = self.current_user
        assert who is not None
        now = utcnow()
        async with self.hub.db.session() as s:
            await s.execute(
                delete(APIToken).where(APIToken.user_id == who.id, APIToken.expires_at < now)
            )
            await s.commit()
            rows = (
                await s.execute(
                    select(APIToken, OAuthClient.description)
                    .join(OAuthClient, OAuthClient.identifier == APIToken.client_id, isouter=True)
                    .where(APIToken.user_id == who.id)
                    .order_by(APIToken.created.desc())
                )
            ).all()
        api_tokens: list[dict[str, Any]] = []
        oauth: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for tok, client in rows:
            model = {
                "id": f"a{tok.id}", "note": tok.note, "created": isoformat(tok.created),
                "last_activity": isoformat(tok.last_activity), "expires_at": isoformat(tok.expires_at),
                "scopes": tok.scopes,
            }  # fmt: skip
            if tok.client_id == "jupyterhub":
                api_tokens.append(model)
            else:
                oauth[client or tok.client_id].append(model)
        self.render_template("token.html", api_tokens=api_tokens, oauth_clients=dict(oauth))


handlers = [(r"token", TokenPageHandler)]
