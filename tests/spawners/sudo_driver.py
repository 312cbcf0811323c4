"""Runs SudoSpawner as the unprivileged hub user (``runuser -u hub -- python sudo_driver.py``).

Reads a JSON config on stdin, starts one server per user, looks at them the way the test
needs, stops them, and prints one JSON report. Kept out of the test process because the
hub must really be unprivileged: sudo's policy is what is being tested.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request

from amalthea.spawners.base import SpawnContext, SpawnError
from amalthea.spawners.sudo import SudoSpawner


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


async def wait_up(url: str) -> None:
    for _ in range(100):
        try:
            fetch(url)
            return
        except OSError:
            await asyncio.sleep(0.1)


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Uid:"))


def spawner(config: dict, user: str, cmd: list[str]) -> SudoSpawner:
    context = SpawnContext(username=user, server_name="", env={"JUPYTERHUB_SERVICE_PREFIX": "/"})
    return SudoSpawner(context, cmd=cmd, helper_cmd=config["helper_cmd"], startup_grace=0.5)


async def main() -> dict:
    config = json.load(sys.stdin)
    report: dict = {"hub_uid": os.getuid(), "servers": {}}
    serve_root = [
        "sh",
        "-c",
        'exec python3 -m http.server "$AMALTHEA_PORT" --bind 127.0.0.1 --directory /',
    ]
    spawners = {}
    for user in config["users"]:
        s = spawner(config, user, serve_root)
        address = await s.start()
        await wait_up(address.url)
        spawners[user] = s
        report["servers"][user] = {
            "uid": uid_of(s.pid),
            "poll": await s.poll(),
            "state": s.get_state(),
            # what this user's server can read, of every user's secret file
            "reads": {
                other: fetch(f"{address.url}{path}") for other, path in config["secrets"].items()
            },
        }
    try:
        open(next(iter(config["secrets"].values()))).read()
        report["hub_reads_secret"] = True
    except PermissionError:
        report["hub_reads_secret"] = False
    for user, s in spawners.items():
        # a restarted hub: a new spawner from the saved state finds and stops the server
        again = spawner(config, user, serve_root)
        again.load_state(json.loads(json.dumps(s.get_state())))
        report["servers"][user]["poll_after_restart"] = await again.poll()
        await again.stop()
        report["servers"][user]["poll_after_stop"] = await s.poll()
        report["servers"][user]["logs"] = await s.logs(5)
    failing = spawner(
        config, config["users"][0], ["sh", "-c", "echo 'cannot import notebook' >&2; exit 4"]
    )
    try:
        await failing.start()
        report["failing"] = "started"
    except SpawnError as e:
        report["failing"] = {"message": e.user_message, "tail": e.log_tail}
    try:
        await spawner(config, "root", serve_root).start()
        report["as_root"] = "started"
    except SpawnError as e:
        report["as_root"] = e.user_message
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
