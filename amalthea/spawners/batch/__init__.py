"""Batch-queue spawners: one templated design (:class:`BatchSpawner`), one module per system.

Short names (entry points): ``slurm``, ``pbs``, ``lsf``, ``sge``, ``htcondor``.
"""

from amalthea.spawners.batch.base import BatchSpawner
from amalthea.spawners.batch.htcondor import HTCondorSpawner
from amalthea.spawners.batch.lsf import LSFSpawner
from amalthea.spawners.batch.pbs import PBSSpawner
from amalthea.spawners.batch.sge import SGESpawner
from amalthea.spawners.batch.slurm import SlurmSpawner
from amalthea.spawners.batch.status import JobState, JobStatus

__all__ = [
    "BatchSpawner",
    "HTCondorSpawner",
    "JobState",
    "JobStatus",
    "LSFSpawner",
    "PBSSpawner",
    "SGESpawner",
    "SlurmSpawner",
]
