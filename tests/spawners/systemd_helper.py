"""Drive SystemdSpawner inside the systemd container: one action per process, state in a file.

Run as ``python3 systemd_helper.py ACTION CONFIG_JSON``; prints one JSON object. A new process
per action means every call after ``start`` goes through load_state, as after a hub restart.
Only needs Debian's python3-traitlets and the checkout on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from amalthea.spawners.base import SpawnContext, SpawnError
from amalthea.spawners.systemd import SystemdSpawner

DATA = Path("/var/lib/amalthea-test-hub")


async def main(action: str, config: dict) -> dict:
    user = config.pop("user")
    properties = config.pop("properties", [])
    env = {"JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/", "JUPYTERHUB_API_TOKEN": "secret-token"}
    ctx = SpawnContext(username=user, server_name="", env=env, data_dir=str(DATA))
    spawner = SystemdSpawner(ctx, **config)
    state_file = DATA / f"{user}.state.json"
    if state_file.exists():
        spawner.load_state(json.loads(state_file.read_text()))
    out: dict = {}
    try:
        if action == "start":
            address = await spawner.start()
            out["url"] = address.url
            out["cmdline"] = spawner.run_command(spawner.unit_name, spawner._env_path(spawner.unit))
        elif action == "poll":
            out["poll"] = await spawner.poll()
        elif action == "stop":
            await spawner.stop()
            out["poll"] = await spawner.poll()
        elif action == "show":
            out["props"] = await spawner.show(*properties)
        elif action == "exit_error":
            error = await spawner.exit_error()
            out["error"] = error and {
                "message": error.user_message,
                "layer": error.layer,
                "log_tail": error.log_tail,
            }
        elif action == "logs":
            out["logs"] = await spawner.logs(20)
    except SpawnError as e:
        out["spawn_error"] = {"message": e.user_message, "layer": e.layer, "log_tail": e.log_tail}
    DATA.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(spawner.get_state()))
    return out


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
    print(json.dumps(result))
