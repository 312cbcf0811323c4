"""TOTP second factor for local accounts through the real hub: enforced per group, enrolment page,
login with a code, wrong and replayed codes refused, a recovery code works exactly once."""

from __future__ import annotations

import re
import time

import httpx
import pyotp
import pytest

from amalthea.auth.state_crypto import generate_key
from amalthea.testing.hub import start_hub
from amalthea.testing.session import HubSession

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PASSWORD = "Erin-secret-42"


@pytest.fixture
def hub(tmp_path):
    hub = start_hub(
        tmp_path, authenticator="local", env={"AMALTHEA_CRYPT_KEY": generate_key()},
        config="""
c.LocalAuthenticator.allow_signup = True
c.LocalAuthenticator.signup_requires_approval = False
c.MFAManager.mfa_required_groups = {"staff"}
c.Amalthea.redirect_to_server = False
""",
    )  # fmt: skip
    yield hub
    hub.stop()


def signup(hub, name: str) -> None:
    with httpx.Client(base_url=hub.url, timeout=60) as c:
        page = c.get("/hub/signup")
        xsrf = re.search(r'name="_xsrf" value="([^"]*)"', page.text).group(1)
        r = c.post("/hub/signup", data={"username": name, "password": PASSWORD,
                                        "password2": PASSWORD, "_xsrf": xsrf})  # fmt: skip
        assert r.status_code == 302, r.text


def xsrf_of(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]*)"', html).group(1)


def test_mfa_required_group_enrol_login_and_recovery(hub):
    signup(hub, "erin")
    signup(hub, "frank")
    r = httpx.post(f"{hub.api_url}/groups/staff", headers=hub.admin_headers,
                   json={"users": ["erin"]}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text

    # frank is not in a group that needs a second factor: password is enough
    with HubSession(hub.url) as frank:
        assert frank.login("frank", PASSWORD).status_code == 302

    # erin must enrol first: no session until she has
    with HubSession(hub.url) as s:
        r = s.login("erin", PASSWORD)
        assert r.status_code == 302 and r.headers["location"] == "/hub/mfa/enrol"
        assert "jupyterhub-hub-login" not in s.client.cookies
        page = s.client.get("/hub/mfa/enrol")
        assert page.status_code == 200 and "otpauth://totp/" in page.text
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
        again = s.client.get("/hub/mfa/enrol")  # a reload shows the same secret
        assert secret in again.text
        totp = pyotp.TOTP(secret)
        wrong = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
        r = s.client.post("/hub/mfa/enrol", data={"code": wrong, "_xsrf": xsrf_of(page.text)})
        assert r.status_code == 400 and "wrong or expired" in r.text
        r = s.client.post("/hub/mfa/enrol", data={"code": totp.now(), "_xsrf": xsrf_of(r.text)})
        assert r.status_code == 200, r.text
        codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", r.text)
        assert len(codes) == 10
        assert s.client.get("/hub/home").status_code == 200  # logged in now

    # later logins need the password and a code (or a recovery code)
    with HubSession(hub.url) as s:
        r = s.login("erin", PASSWORD)
        assert r.status_code == 403 and "one-time code is missing or wrong" in r.text
        r = s.login("erin", PASSWORD, otp="123456" if totp.now() != "123456" else "654321")
        assert r.status_code == 403
        # the enrolment used the current 30 s step; the next step is within the accepted window
        next_code = totp.at(time.time() + 30)
        assert s.login("erin", PASSWORD, otp=next_code).status_code == 302
    with HubSession(hub.url) as s:
        assert s.login("erin", PASSWORD, otp=next_code).status_code == 403  # no replay
    with HubSession(hub.url) as s:
        assert s.login("erin", PASSWORD, otp=codes[3].upper()).status_code == 302
    with HubSession(hub.url) as s:
        assert s.login("erin", PASSWORD, otp=codes[3]).status_code == 403  # used up
    assert "login refused (form login, 403): The one-time code is missing or wrong" in hub.log()
