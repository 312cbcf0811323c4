from __future__ import annotations

import sys

import pytest

FAKE = f'c.Spawner.cmd = [{sys.executable!r}, "-m", "amalthea.testing.fake_singleuser"]\n'


@pytest.fixture
def fast_hub(amalthea_hub_factory):
    """A hub whose servers are the millisecond-start fake single-user server."""
    return amalthea_hub_factory(config=FAKE)
