"""(Son of / Univa / Altair) Grid Engine: qsub / qstat / qdel.

Plain ``qstat`` prints a table of the user's jobs; the job's row gives its state (``qw``,
``hqw``, ``r``, ``t``, ``Eqw``, ...) and, once running, its queue instance ``queue@host``.
A job missing from the table has ended.
"""

from __future__ import annotations

import re

from traitlets import Unicode

from amalthea.spawners.batch.base import BatchSpawner
from amalthea.spawners.batch.status import JobState, JobStatus

SCRIPT = """\
#!/bin/bash
#$ -N {{ job_name }}
#$ -o {{ out_file }}
#$ -e {{ err_file }}
#$ -wd {{ job_dir }}
#$ -S /bin/bash
{% if cores > 1 %}#$ -pe smp {{ cores }}
{% endif %}{% if partition %}#$ -q {{ partition }}
{% endif %}{% if runtime %}#$ -l h_rt={{ runtime }}
{% endif %}{% if memory_mb %}#$ -l h_vmem={{ memory_mb }}M
{% endif %}{% if gpus %}#$ -l gpu={{ gpus }}
{% endif %}{% if account %}#$ -A {{ account }}
{% endif %}{% for line in extra_directives %}#$ {{ line }}
{% endfor %}
{{ body }}"""


class SGESpawner(BatchSpawner):
    batch_script = Unicode(SCRIPT, help=BatchSpawner.batch_script.help).tag(config=True)
    submit_cmd = Unicode("qsub", help="Submit command (script on stdin).").tag(config=True)
    query_cmd = Unicode("qstat -u {{ username }}", help="Table of the user's jobs.").tag(
        config=True
    )
    cancel_cmd = Unicode("qdel {{ job_id }}", help="Cancels the job.").tag(config=True)
    job_id_regex = Unicode(
        r"Your job (\d+)", help="qsub prints 'Your job <id> (\"name\") has been submitted'."
    ).tag(config=True)

    def parse_status(self, returncode: int, stdout: str, stderr: str) -> JobStatus:
        if returncode != 0:
            return JobStatus(JobState.UNKNOWN, reason=stderr.strip())
        for line in stdout.splitlines():
            fields = line.split()
            if not fields or fields[0] != self.job_id:
                continue
            # job-ID prior name user state submit/start-date time [queue] [slots] [ja-task]
            state = fields[4] if len(fields) > 4 else ""
            queue = next((f for f in fields[7:] if "@" in f), "")
            host = queue.split("@", 1)[1] if queue else ""
            if re.search(r"E", state):
                return JobStatus(JobState.GONE, state, host, "job is in error state")
            if re.search(r"[rt]", state) and "h" not in state:
                return JobStatus(JobState.RUNNING, state, host)
            return JobStatus(JobState.PENDING, state, host)
        return JobStatus(JobState.GONE, reason="no longer listed by qstat")
