"""CgroupLimiter against the host's real cgroups (v1 here): limits are enforced on a process."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from amalthea.spawners.cgroups import CgroupError, CgroupLimiter
from amalthea.testing.engines.unix_users import create_user, remove_user

REPO = Path(__file__).resolve().parents[2]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating cgroups needs root")
pytestmark = [pytest.mark.engine("cgroups")]


def child(code: str) -> subprocess.Popen[str]:
    """A python child that waits for a line on stdin (so limits apply first), then runs code."""
    return subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.stdin.readline()\n{code}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def go(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    return proc.communicate("go\n", timeout=timeout)


@pytest.fixture
async def limiter():
    limiter = CgroupLimiter(f"test-{secrets.token_hex(4)}")
    yield limiter
    await limiter.cleanup()
    assert all(not group.exists() for group in limiter.groups.values())


@needs_root
async def test_memory_limit_kills_past_it(limiter: CgroupLimiter) -> None:
    proc = child("data = b'x' * (200 << 20)\nprint('survived')")
    await limiter.apply(proc.pid, 64 << 20, None, None)
    group = limiter.groups["memory"]
    assert proc.pid in limiter.pids_in_group()
    out, _ = go(proc)
    assert proc.returncode == -signal.SIGKILL
    assert "survived" not in out
    if limiter.version == 1:
        # the kernel's own account: it was the OOM killer, in this group
        assert "oom_kill 1" in (group / "memory.oom_control").read_text()


@needs_root
async def test_memory_under_limit_is_fine(limiter: CgroupLimiter) -> None:
    proc = child("data = b'x' * (20 << 20)\nprint('survived')")
    await limiter.apply(proc.pid, 64 << 20, None, None)
    out, _ = go(proc)
    assert proc.returncode == 0 and "survived" in out


@needs_root
async def test_pids_limit_refuses_more_processes(limiter: CgroupLimiter) -> None:
    code = (
        "import threading, time\n"
        "started = 0\n"
        "for _ in range(40):\n"
        "    try:\n"
        "        threading.Thread(target=time.sleep, args=(2,), daemon=True).start(); started += 1\n"
        "    except RuntimeError:\n"
        "        break\n"
        "print(started)"
    )
    proc = child(code)
    await limiter.apply(proc.pid, None, None, 10)
    out, _ = go(proc)
    assert proc.returncode == 0
    assert int(out) < 10  # the main thread counts too


@needs_root
async def test_cpu_limit_throttles(limiter: CgroupLimiter) -> None:
    proc = child("import time\nend = time.monotonic() + 1\nwhile time.monotonic() < end: pass")
    await limiter.apply(proc.pid, None, 0.2, None)
    go(proc)
    stat = (limiter.groups["cpu"] / "cpu.stat").read_text()
    throttled = int(
        next(line.split()[1] for line in stat.splitlines() if line.startswith("nr_throttled"))
    )
    assert throttled > 0


@needs_root
def test_clear_message_when_not_root() -> None:
    user = create_user()
    try:
        code = (
            "import asyncio, os\n"
            "from amalthea.spawners.cgroups import CgroupLimiter, CgroupError\n"
            "try:\n"
            "    asyncio.run(CgroupLimiter('x').apply(os.getpid(), 1 << 30, None, None))\n"
            "except CgroupError as e:\n"
            "    print(e)\n"
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{REPO}:{REPO}/.venv/lib/python3.11/site-packages",
        }
        done = subprocess.run(
            ["/usr/sbin/runuser", "-u", user.name, "--", "/usr/bin/python3", "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=60,
        )
    finally:
        remove_user(user)
    assert "permission denied" in done.stdout, done.stderr
    assert "needs the hub to run as root" in done.stdout


def test_clear_message_when_controller_missing(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n"
    )
    own = tmp_path / "cgroup"
    own.write_text("4:memory:/\n0::/\n")
    limiter = CgroupLimiter("x", mounts_file=str(mounts), self_cgroup_file=str(own))
    with pytest.raises(CgroupError) as info:
        limiter.create(None, None, 100)
    assert "'pids' cgroup controller is not available" in str(info.value)
    assert "pids_limit" in str(info.value)


def test_no_limits_means_no_groups(tmp_path: Path) -> None:
    limiter = CgroupLimiter("x", mounts_file=str(tmp_path / "missing"))
    limiter.create(None, None, None)  # must not even look at the mounts
    assert limiter.groups == {}
