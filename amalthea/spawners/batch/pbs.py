"""PBS Pro / OpenPBS / Torque: qsub / qstat -f / qdel.

``qstat -x`` (PBS Pro) keeps finished jobs listed as ``F``; Torque shows ``C``. Both, and
"Unknown Job Id", mean gone. ``E`` (exiting) also counts as gone: the server is ending.
"""

from __future__ import annotations

from traitlets import Unicode

from amalthea.spawners.batch.base import BatchSpawner
from amalthea.spawners.batch.status import StatusPatterns

SCRIPT = """\
#!/bin/bash
#PBS -N {{ job_name }}
#PBS -o {{ out_file }}
#PBS -e {{ err_file }}
#PBS -l select=1:ncpus={{ cores }}{% if memory_mb %}:mem={{ memory_mb }}mb{% endif %}{% if gpus %}:ngpus={{ gpus }}{% endif %}
{% if partition %}#PBS -q {{ partition }}
{% endif %}{% if runtime %}#PBS -l walltime={{ runtime }}
{% endif %}{% if account %}#PBS -A {{ account }}
{% endif %}{% for line in extra_directives %}#PBS {{ line }}
{% endfor %}
{{ body }}"""


class PBSSpawner(BatchSpawner):
    batch_script = Unicode(SCRIPT, help=BatchSpawner.batch_script.help).tag(config=True)
    submit_cmd = Unicode("qsub", help="Submit command (script on stdin).").tag(config=True)
    query_cmd = Unicode("qstat -x -f {{ job_id }}", help="Full status of the job.").tag(config=True)
    cancel_cmd = Unicode("qdel {{ job_id }}", help="Cancels the job.").tag(config=True)
    job_id_regex = Unicode(r"^(\S+)", help="qsub prints 'id.server'.").tag(config=True)

    status_patterns = StatusPatterns(
        pending=r"^\s*job_state = [QHWTS]\b",
        running=r"^\s*job_state = R\b",
        raw=r"^\s*job_state = (\S+)",
        host=r"^\s*exec_host = ([^/\s+]+)",
        reason=r"^\s*comment = (.+)$",
        gone=r"Unknown Job Id|Job has finished",
        success=r"^[FC]$",
    )
