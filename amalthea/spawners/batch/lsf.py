"""IBM Spectrum LSF: bsub / bjobs / bkill.

``bjobs -o`` gives one line 'STAT EXEC_HOST PEND_REASON'; a parallel job's host reads
'2*node1:node2', of which the first node runs the server.
"""

from __future__ import annotations

from traitlets import Unicode

from amalthea.spawners.batch.base import BatchSpawner
from amalthea.spawners.batch.status import StatusPatterns

SCRIPT = """\
#!/bin/bash
#BSUB -J {{ job_name }}
#BSUB -o {{ out_file }}
#BSUB -e {{ err_file }}
#BSUB -cwd {{ job_dir }}
#BSUB -n {{ cores }}
#BSUB -R "span[hosts=1]"
{% if partition %}#BSUB -q {{ partition }}
{% endif %}{% if runtime %}#BSUB -W {{ runtime }}
{% endif %}{% if memory_mb %}#BSUB -R "rusage[mem={{ memory_mb }}]"
{% endif %}{% if gpus %}#BSUB -gpu "num={{ gpus }}"
{% endif %}{% if account %}#BSUB -P {{ account }}
{% endif %}{% for line in extra_directives %}#BSUB {{ line }}
{% endfor %}
{{ body }}"""


class LSFSpawner(BatchSpawner):
    batch_script = Unicode(SCRIPT, help=BatchSpawner.batch_script.help).tag(config=True)
    submit_cmd = Unicode("bsub", help="Submit command (script on stdin).").tag(config=True)
    query_cmd = Unicode(
        "bjobs -noheader -o 'stat exec_host pend_reason' {{ job_id }}",
        help="Prints 'STAT EXEC_HOST PEND_REASON'.",
    ).tag(config=True)
    cancel_cmd = Unicode("bkill {{ job_id }}", help="Cancels the job.").tag(config=True)
    job_id_regex = Unicode(r"Job <(\d+)>", help="bsub prints 'Job <id> is submitted ...'.").tag(
        config=True
    )

    status_patterns = StatusPatterns(
        pending=r"^(PEND|PSUSP|USUSP|SSUSP|WAIT)\b",
        running=r"^RUN\b",
        host=r"^\S+\s+(?:\d+\*)?([^:\s]+)",
        reason=r"^\S+\s+\S+\s+(.+)$",
        gone=r"is not found",
        success=r"^DONE$",
    )
