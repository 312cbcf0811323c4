"""Job scripts and queue-output parsing for every batch system (no queue needed).

Only Slurm runs for real on this machine (test_slurm.py); for PBS, LSF, SGE and HTCondor
these tests pin the rendered directives and the parsing of each system's documented output.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from amalthea.spawners.base import SpawnContext, SpawnError
from amalthea.spawners.batch import (
    HTCondorSpawner,
    JobState,
    LSFSpawner,
    PBSSpawner,
    SGESpawner,
    SlurmSpawner,
)
from amalthea.spawners.batch.script import render

NASTY = 'it\'s $HOME `id` "quoted"; echo pwned'
OPTIONS = {"partition": "gpu", "runtime": "2:00:00", "memory": "3G", "cores": 4, "gpus": 2, "account": "proj1"}  # fmt: skip


def make(cls, tmp_path: Path, **kwargs):
    context = SpawnContext(
        username="alice",
        server_name="lab",
        env={"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/lab/", "JUPYTERHUB_API_TOKEN": NASTY},
        user_options=kwargs.pop("user_options", OPTIONS),
        report_url=kwargs.pop("report_url", ""),
    )
    return cls(
        context, job_dir=str(tmp_path), cmd=kwargs.pop("cmd", ["amalthea-singleuser"]), **kwargs
    )


@pytest.mark.parametrize(
    ("cls", "lines"),
    [
        (SlurmSpawner, ["#SBATCH --partition=gpu", "#SBATCH --time=2:00:00", "#SBATCH --mem=3072M",
                        "#SBATCH --cpus-per-task=4", "#SBATCH --gres=gpu:2", "#SBATCH --account=proj1"]),
        (PBSSpawner, ["#PBS -q gpu", "#PBS -l walltime=2:00:00", "#PBS -l select=1:ncpus=4:mem=3072mb:ngpus=2",
                      "#PBS -A proj1"]),
        (LSFSpawner, ["#BSUB -q gpu", "#BSUB -W 2:00:00", '#BSUB -R "rusage[mem=3072]"', "#BSUB -n 4",
                      '#BSUB -gpu "num=2"', "#BSUB -P proj1"]),
        (SGESpawner, ["#$ -q gpu", "#$ -l h_rt=2:00:00", "#$ -l h_vmem=3072M", "#$ -pe smp 4",
                      "#$ -l gpu=2", "#$ -A proj1"]),
    ],
)  # fmt: skip
def test_directives_from_user_options(cls, lines, tmp_path: Path) -> None:
    script = make(cls, tmp_path).job_script()
    assert script.startswith("#!/bin/bash\n")
    for line in lines:
        assert line in script.splitlines(), f"{line!r} missing from\n{script}"


def test_traits_and_limits_are_the_defaults(tmp_path: Path) -> None:
    spawner = make(SlurmSpawner, tmp_path, user_options={}, mem_limit="1G", cpu_limit=1.5,
                   req_partition="debug", req_extra=["--constraint=ib"])  # fmt: skip
    lines = spawner.job_script().splitlines()
    assert "#SBATCH --partition=debug" in lines
    assert "#SBATCH --mem=1024M" in lines
    assert "#SBATCH --cpus-per-task=2" in lines  # 1.5 cores -> 2
    assert "#SBATCH --constraint=ib" in lines
    assert not any("--gres" in line or "--time" in line for line in lines)


@pytest.mark.parametrize("bad", ["debug\n#SBATCH --uid=0", "gpu;id", "$(id)", "a'b"])
def test_user_values_cannot_inject_directives(bad: str, tmp_path: Path) -> None:
    spawner = make(SlurmSpawner, tmp_path, user_options={"partition": bad})
    with pytest.raises(SpawnError, match=r"partition=.* contains characters not allowed"):
        spawner.job_script()


def test_body_runs_and_writes_its_address(tmp_path: Path) -> None:
    """The shared body, run by bash: env arrives intact, the address file is written."""
    spawner = make(SlurmSpawner, tmp_path, cmd=["sh", "-c", 'env > "$HOME/env.txt"'],
                   host_cmd="echo node7", port_cmd="echo 4567", report_url="http://hub:8081/hub/api/report",
                   environment={"HOME": str(tmp_path)})  # fmt: skip
    script = tmp_path / "job.sh"
    script.write_text(spawner.job_script())
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env={"PATH": os.environ["PATH"]}
    )
    assert done.returncode == 0, done.stderr
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "env.txt").read_text().splitlines()
        if "=" in line
    )
    assert env["JUPYTERHUB_API_TOKEN"] == NASTY
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:4567/user/alice/lab/"
    assert env["AMALTHEA_REPORT_URL"] == "http://hub:8081/hub/api/report"
    assert env["USER"] == "alice"
    addr = [p for p in tmp_path.iterdir() if p.suffix == ".addr"]
    assert len(addr) == 1 and addr[0].read_text() == "node7:4567\n"
    assert addr[0].name.startswith("lab-")


def test_htcondor_description_names_the_script(tmp_path: Path) -> None:
    spawner = make(HTCondorSpawner, tmp_path)
    spawner.token = "t0k"
    values = spawner._template_values()
    text = render(spawner.submit_description, "description", values)
    lines = text.splitlines()
    assert f"executable = {tmp_path}/lab-t0k.sh" in lines
    assert "request_cpus = 4" in lines and "request_memory = 3072M" in lines
    assert "request_gpus = 2" in lines and "getenv = False" in lines
    assert lines[-1] == "queue"


@pytest.mark.parametrize(
    ("cls", "output", "job_id"),
    [
        (SlurmSpawner, "1234\n", "1234"),
        (SlurmSpawner, "1234;cluster2\n", "1234"),
        (PBSSpawner, "5678.pbs01.example\n", "5678.pbs01.example"),
        (LSFSpawner, "Job <91> is submitted to queue <normal>.\n", "91"),
        (SGESpawner, 'Your job 77 ("amalthea-alice-lab") has been submitted\n', "77"),
        (HTCondorSpawner, "Submitting job(s).\n1 job(s) submitted to cluster 42.\n", "42"),
    ],
)
def test_job_id_from_submit_output(cls, output: str, job_id: str, tmp_path: Path) -> None:
    assert make(cls, tmp_path)._parse_job_id(output) == job_id


def test_job_id_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        SpawnError, match=r"Could not find a job id .*sbatch: error: Batch job submission failed"
    ):
        make(SlurmSpawner, tmp_path)._parse_job_id("sbatch: error: Batch job submission failed")


PBS_RUNNING = """Job Id: 5678.pbs01
    Job_Name = amalthea-alice-lab
    job_state = R
    exec_host = node12/0*4
    queue = gpu
"""
PBS_QUEUED = "Job Id: 5678.pbs01\n    job_state = Q\n    comment = Not Running: Insufficient amount of resource: ngpus\n"
PBS_DONE = "Job Id: 5678.pbs01\n    job_state = F\n    exec_host = node12/0\n    Exit_status = 0\n"
SGE_TABLE = """job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID
-----------------------------------------------------------------------------------------------------------------
     76 0.55500 other      alice        r     11/25/2026 10:01:02 all.q@node3.example            1
     77 0.55500 amalthea-a alice        {state}     11/25/2026 10:02:03 {queue}     4
"""


@pytest.mark.parametrize(
    ("cls", "rc", "out", "err", "state", "host", "extra"),
    [
        (SlurmSpawner, 0, "PENDING n/a Priority\n", "", JobState.PENDING, "n/a", {"reason": "Priority"}),
        (SlurmSpawner, 0, "RUNNING vm None\n", "", JobState.RUNNING, "vm", {}),
        (SlurmSpawner, 0, "COMPLETED vm None\n", "", JobState.GONE, "vm", {"exit_status": 0}),
        (SlurmSpawner, 0, "PREEMPTED vm None\n", "", JobState.GONE, "vm", {"exit_status": 1, "raw": "PREEMPTED"}),
        (SlurmSpawner, 0, "CANCELLED vm None\n", "", JobState.GONE, "vm", {"exit_status": 1}),
        (SlurmSpawner, 1, "", "slurm_load_jobs error: Invalid job id specified\n", JobState.GONE, "", {}),
        (SlurmSpawner, 1, "", "slurm_load_jobs error: Socket timed out on send/recv\n", JobState.UNKNOWN, "", {}),
        (PBSSpawner, 0, PBS_RUNNING, "", JobState.RUNNING, "node12", {"raw": "R"}),
        (PBSSpawner, 0, PBS_QUEUED, "", JobState.PENDING, "", {"reason": "Not Running: Insufficient amount of resource: ngpus"}),
        (PBSSpawner, 0, PBS_DONE, "", JobState.GONE, "node12", {"exit_status": 0}),
        (PBSSpawner, 153, "", "qstat: Unknown Job Id 5678.pbs01\n", JobState.GONE, "", {}),
        (LSFSpawner, 0, "PEND - New job is waiting for scheduling;\n", "", JobState.PENDING, "-", {}),
        (LSFSpawner, 0, "RUN 4*node12:node13 -\n", "", JobState.RUNNING, "node12", {}),
        (LSFSpawner, 0, "DONE node12 -\n", "", JobState.GONE, "node12", {"exit_status": 0}),
        (LSFSpawner, 0, "EXIT node12 -\n", "", JobState.GONE, "node12", {"exit_status": 1}),
        (LSFSpawner, 255, "", "Job <91> is not found\n", JobState.GONE, "", {}),
        (SGESpawner, 0, SGE_TABLE.format(state="qw", queue="              "), "", JobState.PENDING, "", {"raw": "qw"}),
        (SGESpawner, 0, SGE_TABLE.format(state="r ", queue="all.q@node4.example"), "", JobState.RUNNING, "node4.example", {}),
        (SGESpawner, 0, SGE_TABLE.format(state="Eqw", queue="              "), "", JobState.GONE, "", {}),
        (SGESpawner, 0, "", "", JobState.GONE, "", {}),
        (HTCondorSpawner, 0, "1 undefined\n", "", JobState.PENDING, "undefined", {}),
        (HTCondorSpawner, 0, "2 slot1_2@node7.example\n", "", JobState.RUNNING, "node7.example", {}),
        (HTCondorSpawner, 0, "5 undefined\n", "", JobState.PENDING, "undefined", {"raw": "5"}),
        (HTCondorSpawner, 0, "4 node7\n", "", JobState.GONE, "node7", {"exit_status": 0}),
        (HTCondorSpawner, 0, "", "", JobState.GONE, "", {}),
    ],
)  # fmt: skip
def test_query_output_parsing(cls, rc, out, err, state, host, extra, tmp_path: Path) -> None:
    spawner = make(cls, tmp_path)
    spawner.job_id = "77"
    status = spawner.parse_status(rc, out, err)
    assert (status.state, status.host) == (state, host)
    for key, value in extra.items():
        assert getattr(status, key) == value


def test_state_round_trip(tmp_path: Path) -> None:
    spawner = make(LSFSpawner, tmp_path)
    assert spawner.get_state() == {}
    spawner.load_state(
        {"job_id": "91", "token": "abc", "job_dir": "/x", "ip": "10.0.0.7", "port": 4567}
    )
    assert spawner.get_state() == {
        "job_id": "91",
        "token": "abc",
        "job_dir": "/x",
        "ip": "10.0.0.7",
        "port": 4567,
    }
    assert spawner.address.url == "http://10.0.0.7:4567"


def test_missing_client_command_is_a_clear_error(tmp_path: Path) -> None:
    import asyncio

    spawner = make(PBSSpawner, tmp_path, exec_prefix="", submit_cmd="qsub-not-installed")
    with pytest.raises(SpawnError, match="'qsub-not-installed' was not found on the hub host"):
        asyncio.run(spawner._run(["qsub-not-installed"]))
