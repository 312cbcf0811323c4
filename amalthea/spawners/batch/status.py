"""What a batch system says about one job, reduced to what the hub acts on.

Every system has its own words (Slurm ``PENDING``, PBS ``Q``, LSF ``PEND``, SGE ``qw``,
HTCondor ``1``); the spawner only needs four: still waiting, running, gone, or "could not
ask" (a query that failed is not a dead job: the controller may be restarting).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    GONE = "gone"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    #: the system's own word for the state, shown to people ("PENDING", "R", "PEND")
    raw: str = ""
    #: the execution host once running
    host: str = ""
    #: why it waits or why it ended, when the system says
    reason: str = ""
    #: 0 when the system says the job completed normally; meaningful only when GONE
    exit_status: int = 1


@dataclass(frozen=True)
class StatusPatterns:
    """Regexes (MULTILINE) that read a query command's output; group 1 is the value."""

    pending: str
    running: str
    raw: str = r"^\s*(\S+)"
    host: str = ""
    reason: str = ""
    #: matched against stdout+stderr of a failed query: "no such job" means it is gone
    gone: str = ""
    #: a GONE job whose raw state matches this ended normally (exit status 0)
    success: str = ""

    def parse(self, returncode: int, stdout: str, stderr: str) -> JobStatus:
        if returncode != 0:
            if self.gone and re.search(self.gone, stdout + stderr, re.MULTILINE):
                return JobStatus(JobState.GONE, reason=stderr.strip() or stdout.strip())
            return JobStatus(JobState.UNKNOWN, reason=stderr.strip() or stdout.strip())
        raw = _group(self.raw, stdout)
        host = _group(self.host, stdout)
        reason = _group(self.reason, stdout)
        if re.search(self.running, stdout, re.MULTILINE):
            return JobStatus(JobState.RUNNING, raw, host, reason)
        if re.search(self.pending, stdout, re.MULTILINE):
            return JobStatus(JobState.PENDING, raw, host, reason)
        # The query worked and the job is in neither state: finished, cancelled, failed,
        # preempted, or no longer listed at all.
        ok = bool(self.success and raw and re.search(self.success, raw))
        return JobStatus(JobState.GONE, raw, host, reason, 0 if ok else 1)


def _group(pattern: str, text: str) -> str:
    if not pattern:
        return ""
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else ""
