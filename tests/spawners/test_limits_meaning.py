"""mem_limit / cpu_limit / pids_limit mean the same on every spawner (docs/spawners/limits.md).

One setting, one meaning: memory in bytes with no swap on top, CPU in cores, pids counting
processes and threads. Spawners that enforce a limit turn it into their engine's knob (checked
here without the engines; the engine tests check the kernel really enforces them); spawners
that cannot enforce one refuse to start rather than run unlimited.
"""

from __future__ import annotations

import pytest

from amalthea.spawners.base import SpawnContext, SpawnError
from amalthea.spawners.batch import SlurmSpawner
from amalthea.spawners.docker import DockerSpawner
from amalthea.spawners.sudo import SudoSpawner
from amalthea.spawners.systemd import SystemdSpawner

LIMITS = {"mem_limit": "512M", "cpu_limit": "1500m", "pids_limit": 64}
MEM = 512 * 2**20


def ctx(tmp_path) -> SpawnContext:
    return SpawnContext("alice", "", {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"},
                        data_dir=str(tmp_path))  # fmt: skip


def test_same_parsing_everywhere(tmp_path):
    for cls in (DockerSpawner, SystemdSpawner, SlurmSpawner, SudoSpawner):
        spawner = cls(ctx(tmp_path), **LIMITS)
        assert (spawner.mem_limit_bytes, spawner.cpu_limit_cores) == (MEM, 1.5), cls


def test_docker_host_config(tmp_path):
    limits = DockerSpawner(ctx(tmp_path), **LIMITS)._limits()
    assert limits == {"Memory": MEM, "MemorySwap": MEM, "NanoCpus": 1_500_000_000,
                      "PidsLimit": 64}  # fmt: skip


def test_systemd_unit_properties(tmp_path):
    props = SystemdSpawner(ctx(tmp_path), **LIMITS)._limit_properties()
    assert props == [f"MemoryMax={MEM}", "MemorySwapMax=0", "CPUQuota=150%", "TasksMax=64"]


def test_slurm_request(tmp_path):
    spawner = SlurmSpawner(ctx(tmp_path), mem_limit="512M", cpu_limit="1500m")
    requests = spawner._requests()
    # batch systems allocate whole cores: 1.5 becomes 2
    assert (requests["memory_mb"], requests["cores"]) == (512, 2)
    assert "#SBATCH --mem=512M" in spawner.job_script()


async def test_slurm_refuses_pids_limit(tmp_path):
    with pytest.raises(SpawnError, match="cannot enforce pids_limit"):
        await SlurmSpawner(ctx(tmp_path), pids_limit=10).start()


@pytest.mark.parametrize("setting", sorted(LIMITS))
async def test_sudo_refuses_limits_it_cannot_enforce(tmp_path, setting):
    spawner = SudoSpawner(ctx(tmp_path), **{setting: LIMITS[setting]})
    with pytest.raises(SpawnError, match=f"cannot enforce {setting}"):
        await spawner.start()
