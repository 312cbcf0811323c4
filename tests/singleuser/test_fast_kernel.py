"""The fast kernel (amalthea/singleuser/kernel/) behaves like ipykernel, on a real kernel.

One kernel for the module, started from the python3 spec as amalthea-singleuser rewrites it,
driven with jupyter_client. Its environment drops PYTEST_CURRENT_TEST: ipykernel turns off
its capture of file descriptors 1 and 2 under pytest, and subprocess output is part of what
we check. Timing is benchmarks/kernel_rtt.py's job; these tests check behaviour only.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import httpx
import pytest
from conftest import RunningServer, singleuser_env, start_singleuser
from fakehub import ALICE, ALICE_AUTH, FakeHub
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from kernelclient import run_code

from amalthea.singleuser.kernelspec import FAST_KERNEL_MODULE, enable_fast_kernel, fast_argv

Msg = dict[str, Any]


@pytest.fixture(scope="module")
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    specs = KernelSpecManager()
    assert enable_fast_kernel(specs)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture
def kc(kernel: tuple[KernelManager, BlockingKernelClient]) -> BlockingKernelClient:
    return kernel[1]


def run(
    kc: BlockingKernelClient, code: str, stdin: str | None = None, timeout: float = 30
) -> tuple[list[Msg], Msg]:
    """Execute ``code``; return its IOPub messages (through idle) and its execute_reply."""
    msg_id = kc.execute(code, allow_stdin=stdin is not None, store_history=False)
    messages: list[Msg] = []
    deadline = time.monotonic() + timeout
    while not (messages and _is_idle(messages[-1])):
        if stdin is not None:
            try:
                request = kc.get_stdin_msg(timeout=0.01)
            except Empty:
                pass
            else:
                assert request["msg_type"] == "input_request"
                kc.input(stdin)
        try:
            msg = kc.get_iopub_msg(timeout=0.05)
        except Empty:
            assert time.monotonic() < deadline, f"no idle for {code!r}; got {kinds(messages)}"
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            messages.append(msg)
    return messages, shell_reply(kc, msg_id, timeout)


def shell_reply(kc: BlockingKernelClient, msg_id: str, timeout: float = 30) -> Msg:
    """The reply to ``msg_id``, skipping others (wait_for_ready may leave kernel_info replies)."""
    while (reply := kc.get_shell_msg(timeout=timeout))["parent_header"]["msg_id"] != msg_id:
        pass
    return reply


def _is_idle(msg: Msg) -> bool:
    return bool(msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle")


def kinds(messages: list[Msg]) -> list[str]:
    return [
        m["msg_type"] + (":" + m["content"]["execution_state"] if m["msg_type"] == "status" else "")
        for m in messages
    ]


def stdout(messages: list[Msg]) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


def result(messages: list[Msg]) -> str:
    (msg,) = [m for m in messages if m["msg_type"] == "execute_result"]
    return str(msg["content"]["data"]["text/plain"])


# --- which kernel specs are rewritten ---------------------------------------------------------


def test_the_servers_own_python_runs_the_fast_kernel() -> None:
    argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert fast_argv(argv) == ["python", "-m", FAST_KERNEL_MODULE, "-f", "{connection_file}"]
    own = [sys.executable, "-m", "ipykernel", "-f", "{connection_file}", "--debug"]
    assert fast_argv(own) == [sys.executable, "-m", FAST_KERNEL_MODULE, *own[3:]]


@pytest.mark.parametrize(
    ("argv", "metadata"),
    [
        (["/opt/conda/envs/r/bin/python", "-m", "ipykernel_launcher", "-f", "{c}"], {}),
        (["python", "-m", "other_kernel", "-f", "{c}"], {}),
        (["R", "--slave", "-e", "IRkernel::main()", "--args", "{c}"], {}),
        (
            ["python", "-m", "ipykernel_launcher", "-f", "{c}"],
            {"kernel_provisioner": {"provisioner_name": "docker-provisioner"}},
        ),
    ],
    ids=["other-interpreter", "other-module", "other-language", "remote-provisioner"],
)
def test_other_kernels_are_left_alone(argv: list[str], metadata: dict[str, Any]) -> None:
    assert fast_argv(argv, metadata) is None


def test_user_kernelspec_with_another_name_keeps_its_command(tmp_path: Path) -> None:
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path)])
    enable_fast_kernel(specs)
    enable_fast_kernel(specs)  # idempotent: one wrapper
    (tmp_path / "myenv").mkdir()
    argv = ["/home/u/venvs/myenv/bin/python", "-m", "ipykernel_launcher", "-f", "{c}"]
    spec = {"argv": argv, "display_name": "myenv", "language": "python"}
    (tmp_path / "myenv" / "kernel.json").write_text(json.dumps(spec))
    assert specs.get_kernel_spec("myenv").argv == argv
    assert specs.kernel_spec_class.__mro__[2] is KernelSpec


# --- the running kernel -----------------------------------------------------------------------


def test_kernel_runs_direct_iopub_without_subshells(kc: BlockingKernelClient) -> None:
    messages, _ = run(
        kc, "import sys; type(sys.stdout).__module__, type(get_ipython().kernel).__name__"
    )
    assert result(messages) == "('amalthea.singleuser.kernel.iopub', 'FastIPythonKernel')"
    kc.kernel_info()
    info = kc.get_shell_msg(timeout=10)["content"]
    assert "kernel subshells" not in info["supported_features"]


def test_iopub_order_busy_input_stream_result_idle(kc: BlockingKernelClient) -> None:
    for _ in range(20):
        messages, reply = run(kc, "print('a'); 1+1")
        # A stream may come in pieces (a flush timer can fire between "a" and "\n", in
        # stock ipykernel too); clients join them, so compare runs of streams as one.
        collapsed = [
            k
            for i, k in enumerate(kinds(messages))
            if k != "stream" or i == 0 or kinds(messages)[i - 1] != "stream"
        ]
        assert stdout(messages) == "a\n"
        assert collapsed == [
            "status:busy",
            "execute_input",
            "stream",
            "execute_result",
            "status:idle",
        ]
        assert reply["content"]["status"] == "ok"
        assert result(messages) == "2"


def test_output_from_threads_arrives_complete_and_in_order(kc: BlockingKernelClient) -> None:
    # One write per line: print() writes the text and the newline separately, so lines of
    # concurrent prints may interleave in any kernel.
    code = """
import sys, threading
def worker(name):
    for i in range(300):
        sys.stdout.write(f"{name} {i}\\n")
threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(3)]
for t in threads: t.start()
worker("main")
for t in threads: t.join()
"""
    messages, _ = run(kc, code)
    lines = stdout(messages).splitlines()
    for name in ("main", "t0", "t1", "t2"):
        assert [line for line in lines if line.startswith(name + " ")] == [
            f"{name} {i}" for i in range(300)
        ]
    assert kinds(messages)[-1] == "status:idle"


def test_output_of_subprocesses_and_forks(kc: BlockingKernelClient) -> None:
    code = """
import os, subprocess, sys, time, multiprocessing
os.system("echo from-shell")
subprocess.run([sys.executable, "-c", "print('from-child')"])
p = multiprocessing.get_context("fork").Process(target=print, args=("from-fork",))
p.start(); p.join()
time.sleep(0.5)  # fd output goes through a reader thread and the 0.2 s flush timer
"""
    out = stdout(run(kc, code)[0])
    assert "from-shell" in out
    assert "from-child" in out
    assert "from-fork" in out


def test_input_from_stdin(kc: BlockingKernelClient) -> None:
    messages, _ = run(kc, "answer = input('name? '); answer.upper()", stdin="ada")
    assert result(messages) == "'ADA'"


def test_error_has_traceback_and_error_reply(kc: BlockingKernelClient) -> None:
    messages, reply = run(kc, "def inner_frame():\n    return 1 / 0\ninner_frame()")
    (error,) = [m for m in messages if m["msg_type"] == "error"]
    assert error["content"]["ename"] == "ZeroDivisionError"
    assert "inner_frame" in "".join(error["content"]["traceback"])
    assert reply["content"]["status"] == "error"
    assert kinds(messages)[-1] == "status:idle"


def test_error_aborts_requests_queued_behind_it_only(kc: BlockingKernelClient) -> None:
    """As stock ipykernel 7: queued requests are aborted, one sent after the reply is not."""
    for code in ("1/0", "import asyncio\nawait asyncio.sleep(0.1)\n1/0"):
        first = kc.execute(code)
        queued = [kc.execute(str(n)) for n in range(3)]
        assert shell_reply(kc, first)["content"]["status"] == "error"
        assert [shell_reply(kc, m)["content"]["status"] for m in queued] == ["aborted"] * 3
    for _ in range(20):  # without subshells, ipykernel 7.4 aborts one in four of these
        assert shell_reply(kc, kc.execute("1/0"))["content"]["status"] == "error"
        assert shell_reply(kc, kc.execute("2"))["content"]["status"] == "ok"


def test_display_time_magic_and_top_level_await(kc: BlockingKernelClient) -> None:
    code = """
from IPython.display import display, HTML
display(HTML("<b>hi</b>"))
%time x = sum(range(10))
import asyncio
await asyncio.sleep(0.01)
x
"""
    messages, reply = run(kc, code)
    assert reply["content"]["status"] == "ok"
    (shown,) = [m for m in messages if m["msg_type"] == "display_data"]
    assert shown["content"]["data"]["text/html"] == "<b>hi</b>"
    assert "Wall time" in stdout(messages)
    assert result(messages) == "45"


def test_large_output(kc: BlockingKernelClient) -> None:
    messages, _ = run(kc, "print('x' * 3_000_000)")
    assert stdout(messages) == "x" * 3_000_000 + "\n"


def test_comm_round_trip(kc: BlockingKernelClient) -> None:
    run(
        kc,
        "def _echo(comm, msg):\n"
        "    comm.on_msg(lambda m: comm.send({'echo': m['content']['data']}))\n"
        "get_ipython().kernel.comm_manager.register_target('echo', _echo)",
    )
    comm_id = uuid.uuid4().hex
    for msg_type, content in [
        ("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}}),
        ("comm_msg", {"comm_id": comm_id, "data": {"n": 7}}),
    ]:
        kc.shell_channel.send(kc.session.msg(msg_type, content))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=20)
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
            assert msg["content"]["data"] == {"echo": {"n": 7}}
            return
    pytest.fail("no comm_msg echo")


def test_matplotlib_inline_figure_is_shown(kc: BlockingKernelClient) -> None:
    code = (
        "%matplotlib inline\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\n"
        "plt.title('fast kernel')\n"
        "plt.show()"
    )
    messages, reply = run(kc, code, timeout=120)  # the first import builds the font cache
    assert reply["content"]["status"] == "ok", reply["content"]
    (shown,) = [m for m in messages if m["msg_type"] == "display_data"]
    assert shown["content"]["data"]["image/png"].startswith("iVBORw0KGgo")  # a PNG, base64
    assert kinds(messages)[-1] == "status:idle"  # the figure came before idle


def test_ipywidgets_model_syncs_both_ways(kc: BlockingKernelClient) -> None:
    messages, reply = run(kc, "import ipywidgets\nslider = ipywidgets.IntSlider(value=3)\nslider")
    assert reply["content"]["status"] == "ok", reply["content"]
    opened = {
        m["content"]["comm_id"]: m["content"]["data"]["state"]
        for m in messages
        if m["msg_type"] == "comm_open" and m["content"]["target_name"] == "jupyter.widget"
    }
    (view,) = [m for m in messages if m["msg_type"] == "execute_result"]
    model_id = view["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert opened[model_id]["value"] == 3
    # The browser moves the slider: a comm_msg update, as JupyterLab's widget manager sends.
    update = {"comm_id": model_id, "data": {"method": "update", "state": {"value": 7}}}
    kc.shell_channel.send(kc.session.msg("comm_msg", update))
    messages, _ = run(kc, "slider.value")
    assert result(messages) == "7"
    messages, _ = run(kc, "slider.value = 9")  # and the kernel's change reaches the browser
    echoed = [
        m["content"]["data"]
        for m in messages
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == model_id
    ]
    assert {"method": "update", "state": {"value": 9}, "buffer_paths": []} in echoed


def test_interrupt_stops_a_running_cell(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    km, kc = kernel
    msg_id = kc.execute("import time; time.sleep(60)")
    while not (
        (msg := kc.get_iopub_msg(timeout=20))["msg_type"] == "execute_input"
        and msg["parent_header"]["msg_id"] == msg_id
    ):
        pass
    time.sleep(0.2)
    km.interrupt_kernel()
    reply = shell_reply(kc, msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert result(run(kc, "21*2")[0]) == "42"


def test_interrupts_while_the_main_thread_sends_leave_messages_whole(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    """Ctrl-C during a flood of direct sends: every message after it still verifies.

    A KeyboardInterrupt between two frames of a send would leave half a message on the socket;
    jupyter_client would then fail to deserialize (bad signature) or mix up messages. With the
    shield (sigint.py) disabled, about one round in five fails here.
    """
    km, kc = kernel
    for _ in range(15):
        msg_id = kc.execute(
            "import sys\nwhile True:\n    print('x' * 50)\n    sys.stdout.flush()",
        )
        seen = 0
        while seen < 50:
            msg = kc.get_iopub_msg(timeout=20)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                seen += 1
        km.interrupt_kernel()
        reply = shell_reply(kc, msg_id)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        while not _is_idle(msg := kc.get_iopub_msg(timeout=20)) or (
            msg["parent_header"].get("msg_id") != msg_id
        ):
            if msg["msg_type"] == "stream":
                assert msg["content"]["text"].strip("x\n") == ""
    messages, _ = run(kc, "'still', 'fine'")
    assert result(messages) == "('still', 'fine')"


# --- amalthea-singleuser starts it ------------------------------------------------------------

AUTH = ALICE_AUTH


def python3_argv(server: RunningServer) -> list[str]:
    r = httpx.get(server.url + "api/kernelspecs", headers=AUTH, timeout=30)
    r.raise_for_status()
    argv: list[str] = r.json()["kernelspecs"]["python3"]["spec"]["argv"]
    return argv


@pytest.mark.slow
def test_singleuser_runs_python3_as_the_fast_kernel(
    fake_hub: FakeHub, alice_server: RunningServer
) -> None:
    fake_hub.state.tokens["alice-token"] = ALICE
    assert python3_argv(alice_server)[1:3] == ["-m", FAST_KERNEL_MODULE]
    r = httpx.post(alice_server.url + "api/kernels", headers=AUTH, json={"name": "python3"})
    r.raise_for_status()
    kernel_id = r.json()["id"]
    ws_url = (
        f"ws://127.0.0.1:{alice_server.port}{alice_server.prefix}"
        f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    )
    try:
        code = "import sys; type(sys.stdout).__module__"
        assert run_code(ws_url, code, headers=AUTH) == "'amalthea.singleuser.kernel.iopub'"
    finally:
        httpx.delete(alice_server.url + f"api/kernels/{kernel_id}", headers=AUTH, timeout=30)


@pytest.mark.slow
def test_fast_kernel_can_be_turned_off(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.state.tokens["alice-token"] = ALICE
    server = start_singleuser(
        fake_hub,
        singleuser_env(fake_hub, tmp_path),
        tmp_path,
        extra_args=["--HubExtension.fast_kernel=False"],
    )
    try:
        assert python3_argv(server)[1:3] == ["-m", "ipykernel_launcher"]
    finally:
        server.stop()


# --- the shell's shortcuts (kernel/shell.py) give IPython's answers ---------------------------


def test_async_cells_still_run_with_a_coroutine_runner(kc: BlockingKernelClient) -> None:
    messages, reply = run(kc, "import asyncio\nasync def f():\n    return 7\nawait f()")
    assert reply["content"]["status"] == "ok"
    assert result(messages) == "7"
    # The words in strings alone do not make a cell async; it still runs and shows its value.
    messages, _ = run(kc, "'await async'")
    assert result(messages) == "'await async'"
    messages, reply = run(kc, "async def g():\n    yield 3\n[x async for x in g()][0]")
    assert reply["content"]["status"] == "ok"
    assert result(messages) == "3"


def test_printers_registered_for_builtin_types_are_used(kc: BlockingKernelClient) -> None:
    setup = (
        "ip = get_ipython()\n"
        "html = ip.display_formatter.formatters['text/html']\n"
        "html.for_type(int, lambda n: f'<b>{n}</b>')\n"
        "ip.display_formatter.formatters['text/latex'].for_type_by_name("
        "'builtins', 'dict', lambda d: '$%d$' % len(d))"
    )
    run(kc, setup)
    try:
        messages, _ = run(kc, "6*7")
        (shown,) = [m for m in messages if m["msg_type"] == "execute_result"]
        assert shown["content"]["data"] == {"text/plain": "42", "text/html": "<b>42</b>"}
        messages, _ = run(kc, "{'a': 1}")
        (shown,) = [m for m in messages if m["msg_type"] == "execute_result"]
        assert shown["content"]["data"]["text/latex"] == "$1$"
        messages, _ = run(kc, "'plain'")
        (shown,) = [m for m in messages if m["msg_type"] == "execute_result"]
        assert shown["content"]["data"] == {"text/plain": "'plain'"}
    finally:
        run(kc, "html.pop(int); ip.display_formatter.formatters['text/latex'].pop(dict)")


def test_the_kernel_log_drops_debug_records_before_building_them(
    kc: BlockingKernelClient,
) -> None:
    messages, _ = run(
        kc,
        "app = get_ipython().kernel.parent\n"
        "print(app.log.isEnabledFor(10), app.log.isEnabledFor(30), "
        "min(h.level for h in app.log.handlers))",
    )
    assert stdout(messages) == "False True 30\n"
