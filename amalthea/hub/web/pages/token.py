"""``/hub/token``: list, create and revoke one's API tokens (protocol §11.8).

The page renders the list server-side; creating and revoking go through the REST API
(``/hub/api/users/NAME/tokens``) with the page's XSRF token, so the API's rules apply unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from amalthea.hub.clock import isoformat, utcnow
from amalthea.hub.store.models import APIToken, OAuthClient
from amalthea.hub.web.base import PageHandler, authenticated


def _when(moment: datetime | None) -> dict[str, str] | None:
    """Shown to people as "2026-11-26 01:12 UTC" (stored times are naive UTC); the ISO form
    goes into ``<time datetime>`` for machines."""
    if moment is None:
        return None
    return {"iso": isoformat(moment) or "", "text": moment.strftime("%Y-%m-%d %H:%M UTC")}


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
                "id": f"a{tok.id}", "note": tok.note, "created": _when(tok.created),
                "last_activity": _when(tok.last_activity), "expires_at": _when(tok.expires_at),
                "scopes": tok.scopes,
            }  # fmt: skip
            if tok.client_id == "jupyterhub":
                api_tokens.append(model)
            else:
                oauth[client or tok.client_id].append(model)
        options = self._expiry_options()
        default = "2592000" if any(v == "2592000" for v, _ in options) else options[-1][0]
        self.render_template("token.html", api_tokens=api_tokens, oauth_clients=dict(oauth),
                             expiry_options=options, expiry_default=default)  # fmt: skip

    def _expiry_options(self) -> list[tuple[str, str]]:
        """Lifetimes the form offers: none above ``token_expires_in_max_seconds``, then no Never."""
        cap = self.hub.settings.token_expires_in_max_seconds
        if not cap:
            return _EXPIRY
        fits = [(v, label) for v, label in _EXPIRY if v and int(v) <= cap]
        if not any(int(v) == cap for v, _ in fits):
            fits.append((str(cap), f"{cap} seconds (the longest allowed)"))
        return fits


_EXPIRY = [("3600", "1 hour"), ("86400", "1 day"), ("604800", "1 week"), ("2592000", "30 days"),
           ("31536000", "1 year"), ("", "Never")]  # fmt: skip


handlers = [(r"token", TokenPageHandler)]
