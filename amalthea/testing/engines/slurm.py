"""A private one-node Slurm cluster (munged + slurmctld + slurmd) for tests.

Everything lives in one state directory: its own munge socket, slurm.conf, spool and logs,
on ports picked at runtime, so the host's /etc/slurm and any other cluster stay untouched.
Clients find it through ``SLURM_CONF`` (see :meth:`SlurmCluster.env`); jobs inherit it.

Facts behind the configuration (shared/ref/engines.md §4): no cgroup plugins on this kernel
setup, so proctrack/linuxproc + task/none; no accounting daemon, so ``sacct`` is unavailable
and tests must not rely on it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amalthea.testing.engines.apt import EngineUnavailable, ensure_commands

PACKAGES = {"sbatch": "slurm-wlm", "slurmctld": "slurm-wlm", "munged": "munge"}

_CONF = """\
ClusterName=amalthea-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PropagateResourceLimits=NONE
MailProg=/bin/true
ReturnToService=2
KillWait=2
MinJobAge=60
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=other Nodes={host} MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SlurmCluster:
    """A running private cluster; ``stop()`` ends its daemons (started by us, by pid)."""

    state_dir: Path
    host: str
    partitions: tuple[str, ...] = ("debug", "other")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.state_dir / "slurm.conf"

    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, squeue, ...) to talk to this cluster."""
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), env=self.env(), capture_output=True, text=True, check=False, timeout=30
        )

    def node_state(self) -> str:
        # one line per (node, partition); the single node is in every partition
        done = self.run("sinfo", "-h", "-N", "-o", "%T")
        states = set(done.stdout.split()) if done.returncode == 0 else set()
        return states.pop() if len(states) == 1 else ",".join(sorted(states))

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.state_dir / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        # Cancel jobs while slurmd still runs: stopping it under a running job leaves an
        # orphaned slurmstepd behind.
        if self.procs and all(p.poll() is None for p in self.procs):
            jobs = self.run("squeue", "-h", "-o", "%i").stdout.split()
            if jobs:
                self.run("scancel", *jobs)
                deadline = time.monotonic() + 15
                while (
                    self.run("squeue", "-h", "-o", "%i").stdout.split()
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def start_slurm(timeout: float = 30.0) -> SlurmCluster:
    """Install (if needed) and start a one-node cluster; returns once the node is idle."""
    if os.geteuid() != 0:
        raise EngineUnavailable("a private Slurm cluster needs root (slurmd starts jobs as users)")
    ensure_commands(PACKAGES)
    if not Path("/etc/munge/munge.key").exists():
        raise EngineUnavailable("/etc/munge/munge.key is missing; reinstall the munge package")
    # /tmp, not the cache dir: munged refuses sockets in group/world-writable dirs unless the
    # sticky bit is set, and mkdtemp gives a 0700 dir we then hand to the munge user.
    state = Path(tempfile.mkdtemp(prefix="amalthea-slurm-"))
    state.chmod(0o755)
    munge_dir = state / "munge"
    munge_dir.mkdir()
    munge_dir.chmod(0o755)  # munged demands o+x on its socket dir
    munge = pwd.getpwnam("munge")
    os.chown(munge_dir, munge.pw_uid, munge.pw_gid)
    for sub in ("ctld", "d"):
        (state / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    cluster = SlurmCluster(state_dir=state, host=host)
    cluster.conf.write_text(
        _CONF.format(
            host=host,
            ctld_port=_free_port(),
            d_port=_free_port(),
            munge_socket=munge_dir / "munge.socket",
            state=state,
            cpus=os.cpu_count() or 1,
            memory_mb=1024,
        )
    )
    try:
        _start_daemons(cluster, munge_dir)
        _wait_idle(cluster, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemons(cluster: SlurmCluster, munge_dir: Path) -> None:
    env = cluster.env()
    log = open(cluster.state_dir / "munged.log", "ab")
    munged = [
        "/usr/sbin/munged", "--foreground", f"--socket={munge_dir}/munge.socket",
        f"--pid-file={munge_dir}/munged.pid", f"--seed-file={munge_dir}/munged.seed",
        f"--log-file={munge_dir}/munged.log",
    ]  # fmt: skip
    cluster.procs.append(
        subprocess.Popen(["runuser", "-u", "munge", "--", *munged], stdout=log, stderr=log)
    )
    _wait_for(lambda: (munge_dir / "munge.socket").exists(), 10, "munged socket", cluster)
    conf = str(cluster.conf)
    for cmd in (
        ["/usr/sbin/slurmctld", "-D", "-i", "-f", conf],
        ["/usr/sbin/slurmd", "-D", "-f", conf],
    ):
        cluster.procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )


def _wait_idle(cluster: SlurmCluster, timeout: float) -> None:
    _wait_for(lambda: cluster.node_state() == "idle", timeout, "the node to be idle", cluster)


def _wait_for(check: Callable[[], bool], timeout: float, what: str, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for proc in cluster.procs:
            if proc.poll() is not None:
                raise EngineUnavailable(
                    f"{proc.args!r} exited with {proc.returncode} while waiting for {what}\n"
                    + cluster.log_tail()
                )
        time.sleep(0.1)
    raise EngineUnavailable(f"timed out after {timeout}s waiting for {what}\n{cluster.log_tail()}")
