"""SudoSpawner: an unprivileged hub user starts servers as two other users via one sudo rule."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from amalthea.testing.engines.apt import EngineUnavailable, ensure_commands
from amalthea.testing.engines.unix_users import create_user, remove_user

pytestmark = [pytest.mark.engine("sudo"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = REPO / ".venv/lib/python3.11/site-packages"
HELPER = ["/usr/bin/python3", str(REPO / "amalthea/spawners/sudo_helper.py")]


@pytest.fixture(scope="module")
def setup():
    if os.geteuid() != 0:
        pytest.skip("needs root to create users and a sudoers rule")
    try:
        ensure_commands({"sudo": "sudo", "visudo": "sudo"})
    except EngineUnavailable as e:
        pytest.skip(str(e))
    hub, alice, bob = create_user("amh"), create_user(), create_user()
    rule = Path(f"/etc/sudoers.d/amalthea-test-{secrets.token_hex(4)}")
    # exactly the helper, as exactly these users; documented in docs/spawners/sudo.md
    rule.write_text(f"{hub.name} ALL=({alice.name},{bob.name}) NOPASSWD: {' '.join(HELPER)} *\n")
    rule.chmod(0o440)
    check = subprocess.run(["visudo", "-cf", str(rule)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    secrets_ = {}
    for user in (alice, bob):
        path = Path(user.home) / "secret.txt"
        path.write_text(f"{user.name}'s secret\n")
        os.chown(path, user.uid, user.gid)
        path.chmod(0o600)
        secrets_[user.name] = str(path)
    yield hub, alice, bob, secrets_
    rule.unlink()
    for user in (hub, alice, bob):
        remove_user(user)


def test_hub_user_spawns_as_two_isolated_users(setup) -> None:
    hub, alice, bob, secret_files = setup
    config = {"users": [alice.name, bob.name], "helper_cmd": HELPER, "secrets": secret_files}
    # the venv's interpreter lives under /root (0700); the system python reads its packages
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{SITE_PACKAGES}"}
    done = subprocess.run(
        [
            "/usr/sbin/runuser",
            "-u",
            hub.name,
            "--",
            "/usr/bin/python3",
            str(Path(__file__).with_name("sudo_driver.py")),
        ],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["hub_uid"] == hub.uid
    assert report["hub_reads_secret"] is False
    for user, other in ((alice, bob), (bob, alice)):
        server = report["servers"][user.name]
        assert server["uid"] == user.uid
        assert server["poll"] is None
        # each server reads its own user's file and not the other's (home dirs are 0700)
        assert server["reads"] == {user.name: 200, other.name: 404}
        assert server["poll_after_restart"] is None
        assert server["poll_after_stop"] == 0
        assert any("GET /home" in line for line in server["logs"])
    assert "exited at once with status 4" in report["failing"]["message"]
    assert any("cannot import notebook" in line for line in report["failing"]["tail"])
    assert "Could not start the server as 'root'" in report["as_root"]
    assert "sudoers rule" in report["as_root"]
