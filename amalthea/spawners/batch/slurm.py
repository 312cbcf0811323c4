"""Slurm: sbatch / squeue / scancel.

``squeue -t all`` keeps listing a job for ``MinJobAge`` seconds after it ends (as COMPLETED,
CANCELLED, FAILED, PREEMPTED, TIMEOUT, ...) and then answers "Invalid job id"; both mean
gone. ``sacct`` is not used: it needs slurmdbd, which many small clusters lack.
"""

from __future__ import annotations

from traitlets import Unicode

from amalthea.spawners.batch.base import BatchSpawner
from amalthea.spawners.batch.status import StatusPatterns

SCRIPT = """\
#!/bin/bash
#SBATCH --job-name={{ job_name }}
#SBATCH --chdir={{ job_dir }}
#SBATCH --output={{ out_file }}
#SBATCH --error={{ err_file }}
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task={{ cores }}
{% if partition %}#SBATCH --partition={{ partition }}
{% endif %}{% if runtime %}#SBATCH --time={{ runtime }}
{% endif %}{% if memory_mb %}#SBATCH --mem={{ memory_mb }}M
{% endif %}{% if gpus %}#SBATCH --gres=gpu:{{ gpus }}
{% endif %}{% if account %}#SBATCH --account={{ account }}
{% endif %}{% for line in extra_directives %}#SBATCH {{ line }}
{% endfor %}
{{ body }}"""


class SlurmSpawner(BatchSpawner):
    batch_script = Unicode(SCRIPT, help=BatchSpawner.batch_script.help).tag(config=True)
    submit_cmd = Unicode("sbatch --parsable", help="Submit command (script on stdin).").tag(
        config=True
    )
    query_cmd = Unicode(
        "squeue -h -t all -j {{ job_id }} -o '%T %B %r'",
        help="Prints 'STATE HOST REASON' for the job.",
    ).tag(config=True)
    cancel_cmd = Unicode("scancel {{ job_id }}", help="Cancels the job.").tag(config=True)
    job_id_regex = Unicode(r"^(\d+)", help="sbatch --parsable prints 'id[;cluster]'.").tag(
        config=True
    )

    status_patterns = StatusPatterns(
        pending=r"^(PENDING|CONFIGURING|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SUSPENDED)\b",
        running=r"^RUNNING\b",
        host=r"^\S+\s+(\S+)",
        reason=r"^\S+\s+\S+\s+(.+)$",
        gone=r"Invalid job id",
        success=r"^COMPLETED$",
    )

    async def queue_position(self) -> str:
        """'position N of M in <partition>, expected start T' from squeue's priority order."""
        values = self._template_values()
        partition = values["partition"]
        cmd = ["squeue", "-h", "-t", "PENDING", "--sort=-p,i", "-o", "%i"]
        if partition:
            cmd += ["-p", partition]
        rc, out, _ = await self._run(cmd)
        if rc != 0 or self.job_id not in out.split():
            return ""
        pending = out.split()
        where = f"position {pending.index(self.job_id) + 1} of {len(pending)}"
        if partition:
            where += f" in {partition}"
        rc, out, _ = await self._run(["squeue", "-h", "--start", "-j", self.job_id, "-o", "%S"])
        start = out.strip()
        if rc == 0 and start and start not in ("N/A", "Unknown"):
            where += f", expected start {start}"
        return where
