"""QA: the first start's console output leads with what a new admin needs.

The one-time setup link must be printed and must not drown in migration chatter (Alembic's
INFO lines about its plugins are noise to someone who just typed ``./run.sh``).
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow


def test_first_start_prints_setup_link_without_alembic_noise(amalthea_hub_factory):
    hub = amalthea_hub_factory(authenticator="local")
    log = hub.log()
    assert re.search(r"http://127\.0\.0\.1:\d+/hub/setup\?code=\S+", log), log
    assert "alembic.runtime" not in log, log
