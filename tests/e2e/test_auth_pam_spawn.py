"""PAM login through the real hub, then the ``local`` spawner (hub as root) runs the person's
server and kernels as their own Unix account."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from amalthea.testing.engines.auth_fixtures import pam_test_service  # noqa: F401
from amalthea.testing.engines.unix_users import create_user, remove_user
from amalthea.testing.hub import start_hub
from amalthea.testing.session import HubSession, run_code

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = REPO / ".venv/lib/python3.11/site-packages"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.engine("pam"),
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="the local spawner switches users: needs root"),
]


def server_pid(hub, name: str) -> int:
    with sqlite3.connect(hub.data_dir / "amalthea.sqlite") as db:
        (raw,) = db.execute(
            "SELECT s.spawner_state FROM servers s JOIN users u ON u.id = s.user_id "
            "WHERE u.name = ? AND s.name = ''",
            (name,),
        ).fetchone()
    return int(json.loads(raw)["pid"])


def uids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def test_pam_login_then_server_runs_as_the_user(tmp_path, pam_test_service):  # noqa: F811
    user = create_user("amtp")
    hub = None
    try:
        subprocess.run(["chpasswd"], input=f"{user.name}:Good-pw-17\n", text=True, check=True)
        hub = start_hub(
            tmp_path, authenticator="pam", spawner="local",
            config=f"c.PAMAuthenticator.service = {pam_test_service!r}\n"
            "c.PAMAuthenticator.allow_all = True\n"
            # the venv's interpreter lives under /root (0700): the system python 3.11 runs the
            # server and its kernels, reading the venv's packages
            "c.Spawner.cmd = ['/usr/bin/python3', '-c', "
            "'from amalthea.singleuser.app import main; main()']\n"
            f"c.Spawner.environment = {{'PYTHONPATH': '{REPO}:{SITE_PACKAGES}'}}\n",
        )  # fmt: skip
        with HubSession(hub.url) as s:
            assert s.login(user.name, "wrong-pw").status_code == 403
            assert s.login(user.name, "Good-pw-17").status_code == 302
            events = s.start_server()
            assert events[-1].get("ready") is True, events[-1]
            assert uids(server_pid(hub, user.name)) == [user.uid] * 4  # real, effective, saved, fs
            r = httpx.post(f"{hub.api_url}/users/{user.name}/tokens", headers=hub.admin_headers,
                           json={"note": "pam e2e"}, timeout=30)  # fmt: skip
            auth = {"Authorization": f"token {r.json()['token']}"}
            _kid, out = run_code(hub.url, f"/user/{user.name}/", auth,
                                 "import os; (os.getuid(), os.getgid(), os.getcwd())")  # fmt: skip
            assert out == repr((user.uid, user.gid, user.home))
            assert s.stop_server().status_code in (202, 204)
    finally:
        if hub is not None:
            hub.stop()
        remove_user(user)
