"""HTCondor: condor_submit / condor_q / condor_rm.

HTCondor submits a *description*, not a script, so the job script is first written to
``<job_dir>/<name>.sh`` (as the user) and the description names it as the executable.
``condor_q -af JobStatus RemoteHost`` prints numeric states: 1 idle, 2 running, 3 removed,
4 completed, 5 held, 6 transferring output, 7 suspended.
"""

from __future__ import annotations

from typing import Any

from traitlets import Unicode

from amalthea.spawners.base import SpawnError
from amalthea.spawners.batch.base import LAYER, BatchSpawner
from amalthea.spawners.batch.script import TemplateError, render
from amalthea.spawners.batch.status import StatusPatterns

SCRIPT = """\
#!/bin/bash
{{ body }}"""

DESCRIPTION = """\
universe = vanilla
executable = {{ script_file }}
batch_name = {{ job_name }}
initialdir = {{ job_dir }}
output = {{ out_file }}
error = {{ err_file }}
getenv = False
request_cpus = {{ cores }}
{% if memory_mb %}request_memory = {{ memory_mb }}M
{% endif %}{% if gpus %}request_gpus = {{ gpus }}
{% endif %}{% if runtime %}+MaxRuntime = {{ runtime }}
{% endif %}{% if partition %}requirements = (TARGET.Partition == "{{ partition }}")
{% endif %}{% if account %}accounting_group = {{ account }}
{% endif %}{% for line in extra_directives %}{{ line }}
{% endfor %}queue
"""


class HTCondorSpawner(BatchSpawner):
    batch_script = Unicode(SCRIPT, help=BatchSpawner.batch_script.help).tag(config=True)
    submit_description = Unicode(
        DESCRIPTION, help="Jinja2 template of the condor_submit description."
    ).tag(config=True)
    submit_cmd = Unicode("condor_submit", help="Submit command (description on stdin).").tag(
        config=True
    )
    query_cmd = Unicode(
        "condor_q {{ job_id }} -af JobStatus RemoteHost", help="Prints 'STATUS HOST'."
    ).tag(config=True)
    cancel_cmd = Unicode("condor_rm {{ job_id }}", help="Cancels the job.").tag(config=True)
    job_id_regex = Unicode(
        r"submitted to cluster (\d+)",
        help="condor_submit prints '1 job(s) submitted to cluster N.'",
    ).tag(config=True)

    status_patterns = StatusPatterns(
        pending=r"^[157]\b",
        running=r"^[26]\b",
        host=r"^\S+\s+(?:slot[\d_]+@)?([^\s]+)",
        success=r"^4$",
    )

    async def prepare_submission(self, script: str, values: dict[str, Any]) -> str:
        write = self._queue_cmd(
            'sh -c \'umask 077; cat > "$1" && chmod u+x "$1"\' sh {{ script_file | q }}', values
        )
        await self._run_checked(write, "write the job script", stdin=script)
        try:
            return render(self.submit_description, "HTCondorSpawner.submit_description", values)
        except TemplateError as e:
            raise SpawnError(f"Cannot write the submit description: {e}", layer=LAYER) from e
