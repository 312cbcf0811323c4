"""PAMAuthenticator with real Unix users (useradd/chpasswd) and a nodelay PAM service."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from traitlets import TraitError

from amalthea.auth.base import AuthError, LoginRequest
from amalthea.auth.pam import PAMAuthenticator, check_service_file, unix_groups
from amalthea.testing.engines.unix_users import (
    create_group,
    create_user,
    remove_group,
    remove_user,
)

pytestmark = [pytest.mark.engine("pam"), pytest.mark.timeout(60)]


def form(username: str, password: str) -> LoginRequest:
    return LoginRequest(form={"username": username, "password": password}, remote_ip="127.0.0.1")


@pytest.fixture
def admin_group():
    name = create_group("amtadm")
    yield name
    remove_group(name)


@pytest.fixture
def users(admin_group):
    """Two fresh users with passwords; the first is in admin_group."""
    made = [create_user("amtp", groups=(admin_group,)), create_user("amtp")]
    passwords = {u.name: f"pw-{u.name}-x1" for u in made}
    lines = "".join(f"{name}:{pw}\n" for name, pw in passwords.items())
    subprocess.run(["chpasswd"], input=lines, text=True, check=True)
    yield [(u, passwords[u.name]) for u in made]
    for u in made:
        remove_user(u)


async def test_good_and_bad_password_and_admin_group(users, admin_group, pam_test_service):
    (admin, admin_pw), (plain, plain_pw) = users
    auth = PAMAuthenticator(service=pam_test_service, admin_groups={admin_group}, allow_all=True)
    await auth.startup()

    result = await auth.login(form(admin.name, admin_pw))
    assert result is not None and result.name == admin.name
    assert admin_group in result.groups and admin.name in result.groups  # supplementary + primary
    assert result.admin is True

    other = await auth.login(form(plain.name, plain_pw))
    assert other is not None and other.admin is False and admin_group not in other.groups

    started = time.monotonic()
    assert await auth.login(form(admin.name, "wrong")) is None
    assert time.monotonic() - started < 1.5  # nodelay service: no faildelay
    assert await auth.login(form("amtnosuchuser", "x")) is None
    assert await auth.login(form(admin.name, "")) is None


async def test_pam_runs_off_the_event_loop(users, pam_test_service):
    (user, password), _ = users
    auth = PAMAuthenticator(service=pam_test_service, allow_all=True)
    # Several logins at once finish together; a blocking call would serialise them and
    # freeze this ticker.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(auth.login(form(user.name, password)) for _ in range(4)))
    task.cancel()
    assert all(r is not None for r in results)
    assert ticks >= 1


async def test_allow_list_applies(users, pam_test_service):
    (user, password), (other, other_pw) = users
    auth = PAMAuthenticator(service=pam_test_service, allowed_users={user.name})
    assert (await auth.login(form(user.name, password))).name == user.name
    with pytest.raises(AuthError) as err:
        await auth.login(form(other.name, other_pw))
    assert "not on the list" in err.value.user_message


def test_su_service_is_refused():
    with pytest.raises(TraitError, match="accepts any password"):
        PAMAuthenticator(service="su")
    with pytest.raises(TraitError, match="accepts any password"):
        PAMAuthenticator(service="su-l")


async def test_su_refused_at_startup_even_if_validation_is_bypassed():
    auth = PAMAuthenticator()
    auth._trait_values["service"] = "su"  # simulate config that skipped validation
    with pytest.raises(ValueError, match="accepts any password"):
        await auth.startup()


def test_service_file_checks(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="does not exist"):
        check_service_file("amalthea-no-such-service")
    # any service that lets root in through pam_rootok is refused, whatever its name
    import amalthea.auth.pam as pam_module

    monkeypatch.setattr(pam_module, "PAM_DIR", tmp_path)
    (tmp_path / "sneaky").write_text("auth  sufficient  pam_rootok.so\nauth required pam_unix.so\n")
    with pytest.raises(ValueError, match="pam_rootok"):
        check_service_file("sneaky")


def test_unix_groups_of_unknown_user_is_empty():
    assert unix_groups("amtnosuchuser") == []
    assert "root" in unix_groups("root")
