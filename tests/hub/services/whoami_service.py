"""A real hub service in a few lines (amalthea.services.auth): who is the logged-in user?"""

import json
import os

from amalthea.services.auth import HubOAuth, authenticated, service_app


class WhoAmI(HubOAuth.Handler):
    @authenticated
    def get(self):
        self.write({"name": self.current_user["name"], "kind": self.current_user["kind"]})


if __name__ == "__main__":
    with open("service-env.json", "w") as f:  # for the test to check the hub's environment
        json.dump({k: v for k, v in os.environ.items() if k.startswith(("JUPYTERHUB_", "JPY_"))}, f)
    service_app([("", WhoAmI)]).listen_from_env()
