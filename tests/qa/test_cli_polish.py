"""QA polish: one log line format (date and time) for every hub logger, and ``--help`` shows
the plugin defaults that are really used, not the abstract base classes."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request


def test_help_shows_real_plugin_defaults():
    out = subprocess.run([sys.executable, "-m", "amalthea.cli", "--help"], capture_output=True,
                         text=True, timeout=60).stdout  # fmt: skip
    for flag, default in (("authenticator", "local"), ("spawner", "local-shared"),
                          ("proxy", "amalthea")):  # fmt: skip
        block = out.split(f"--{flag}=", 1)[1].split("Equivalent to", 1)[0]
        assert f"Default: '{default}'" in block, block


def test_one_log_format(amalthea_hub):
    hub = amalthea_hub
    hub.restart()  # startup and shutdown lines come from the app's logger
    urllib.request.urlopen(hub.api_url + "/")
    with contextlib.suppress(urllib.error.HTTPError):  # a 404 line from amalthea.access
        urllib.request.urlopen(hub.hub_url + "/hub/no-such-page")
    # Tornado writes the access line after the response has gone out: wait for it, briefly.
    deadline = time.monotonic() + 10
    while " amalthea.access: 404 " not in hub.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    stamped = [line for line in hub.log().splitlines() if re.match(r"\d\d(:|\d\d-)", line)]
    assert any(" amalthea.access: 404 " in line for line in stamped), stamped
    bad = [line for line in stamped if not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)]
    assert not bad, bad
