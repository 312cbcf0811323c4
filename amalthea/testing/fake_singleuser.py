"""A stand-in single-user server: starts in milliseconds, speaks just enough HTTP.

``python -m amalthea.testing.fake_singleuser`` listens where ``JUPYTERHUB_SERVICE_URL`` says and
answers every GET under ``JUPYTERHUB_SERVICE_PREFIX`` with 200 JSON ``{"user", "path"}``. It
writes its environment to ``./hub-env.json`` (the working directory the spawner gave it) so tests
can read the server token and OAuth settings the hub handed over. Use it to test hub behaviour
without paying JupyterLab's start-up, and to measure the hub's own share of a spawn.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({
            "user": os.environ.get("JUPYTERHUB_USER"), "path": self.path, "uid": os.getuid(),
            "cwd": os.getcwd(), "home": os.environ.get("HOME"),
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write("%s\n" % (format % args))


def main() -> None:
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    with open("hub-env.json", "w") as f:
        json.dump({k: v for k, v in os.environ.items() if k.startswith(("JUPYTERHUB_", "JPY_"))}, f)
    server = ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 8888), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"fake single-user server for {os.environ.get('JUPYTERHUB_USER')} on {url.geturl()}",
          flush=True)  # fmt: skip
    server.serve_forever()


if __name__ == "__main__":
    main()
