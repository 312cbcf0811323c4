"""QA: /hub/change-password is not a free password-guessing oracle, and a changed password
ends the person's other sessions (a thief's cookie must not outlive the change)."""

from __future__ import annotations

import re

from amalthea.testing.session import HubSession

GOOD = "correct horse battery"


def _setup_admin(hub) -> None:
    link = re.search(r"(/hub/setup\?code=\S+)", hub.log()).group(1)
    with HubSession(hub.url) as s:
        page = s.client.get(link)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        form = {"_xsrf": xsrf, "username": "boss", "password": GOOD, "password2": GOOD}
        assert s.client.post(link, data=form).status_code == 302


def _change(s: HubSession, old: str, new: str):
    return s.client.post("/hub/change-password", data={
        "_xsrf": s.xsrf, "password": old, "new_password": new, "new_password2": new})  # fmt: skip


def test_wrong_current_password_counts_toward_lockout(amalthea_hub_factory):
    hub = amalthea_hub_factory(authenticator="local", admin_name="root-admin",
                               config="c.LocalAuthenticator.lockout_attempts = 3")  # fmt: skip
    _setup_admin(hub)
    with HubSession(hub.url) as s:
        assert s.login("boss", GOOD).status_code == 302
        for _ in range(3):
            assert _change(s, "guess guess", "a new passphrase").status_code == 403
        r = _change(s, GOOD, "a new passphrase")  # even the right one: the account is locked
        assert r.status_code == 429 and "locked" in r.text
    with HubSession(hub.url) as s:
        assert s.login("boss", GOOD).status_code == 429


def test_change_password_throttled_like_logins(amalthea_hub_factory):
    hub = amalthea_hub_factory(authenticator="local", admin_name="root-admin", config="""
        c.LocalAuthenticator.lockout_attempts = 0
        c.Amalthea.login_burst = 3
    """)  # fmt: skip
    _setup_admin(hub)
    with HubSession(hub.url) as s:
        assert s.login("boss", GOOD).status_code == 302
        codes = [_change(s, f"guess {i} guess", "a new passphrase").status_code for i in range(5)]
        assert codes[:3] == [403] * 3 and 429 in codes[3:], codes


def test_change_password_logs_out_other_sessions(amalthea_hub_factory):
    hub = amalthea_hub_factory(authenticator="local", admin_name="root-admin")
    _setup_admin(hub)
    with HubSession(hub.url) as other, HubSession(hub.url) as mine:
        assert other.login("boss", GOOD).status_code == 302
        assert mine.login("boss", GOOD).status_code == 302
        assert other.api("GET", "/user").status_code == 200
        r = _change(mine, GOOD, "a new passphrase")
        assert r.status_code == 200 and "was changed" in r.text
        assert mine.api("GET", "/user").json()["name"] == "boss"  # this session stays
        assert other.api("GET", "/user").status_code == 403
        assert other.client.get("/hub/home").status_code == 302  # back to the login page
