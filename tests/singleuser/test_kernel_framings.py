"""Both kernel websocket framings through amalthea-singleuser: legacy JSON text (what scripts
and jupyter_client-style clients speak) and v1 binary (what JupyterLab negotiates).

Regression: the fast relay (amalthea/singleuser/relay.py) once broke every v1 reply, so
JupyterLab showed the kernel as "Unknown" and no cell ever ran."""

from __future__ import annotations

import pytest
from fakehub import ALICE, ALICE_AUTH

from amalthea.testing import kernel_v1
from amalthea.testing.session import run_code

pytestmark = pytest.mark.slow

AUTH = ALICE_AUTH


@pytest.mark.parametrize("protocol", [None, kernel_v1.V1], ids=["legacy", "v1"])
def test_code_runs_over_each_framing(fake_hub, alice_server, protocol):
    fake_hub.state.tokens["alice-token"] = ALICE
    base = f"http://127.0.0.1:{alice_server.port}"
    kernel, out = run_code(base, alice_server.prefix, AUTH, "6*7", protocol=protocol)
    assert out == "42"
    # the same kernel again, printing instead of a result (stream messages, not execute_result)
    _, out = run_code(base, alice_server.prefix, AUTH, "print('a' * 3)", kernel_id=kernel,
                      protocol=protocol)  # fmt: skip
    assert out == "aaa"
