"""BatchSpawner: a single-user server as a job in a batch queue, one design for every system.

Lifecycle of one spawn:

1. ``start()`` renders the job script (system header template + shared body, see
   :mod:`.script`), creates the job directory as the user, and submits the script on stdin
   with ``exec_prefix`` + ``submit_cmd`` (by default ``sudo -n -u <user> sbatch``), so the job
   runs as the user and the hub never needs root.
2. It then queries the job every ``query_interval`` seconds, turning the queue state and
   position into progress events, until the server's address is known, either

   - pushed: the single-user server POSTs ``{"ip", "port"}`` to ``SpawnContext.report_url``
     (passed as ``AMALTHEA_REPORT_URL``) and the hub calls :meth:`report_address`; or
   - pulled: the job script writes ``host:port`` to ``<job_dir>/<token>.addr`` before starting
     the server and the spawner reads it (directly, or through ``exec_prefix cat`` when the
     hub may not read the user's files). This one needs no hub and is what the tests use.

   When the hub gives a report URL, only the report counts (the file's port was picked
   before the server bound it). A job that ends first fails the spawn with its stderr tail.
3. ``poll()`` queries the job: gone (finished, cancelled, preempted, requeued) means dead.
4. ``stop()`` cancels the job and waits briefly for the queue to agree.

State (``get_state``) is the job id, token, job directory and address, enough for a
restarted hub to find the job and keep it.
"""

from __future__ import annotations

import asyncio
import math
import os
import pwd
import re
import secrets
import shlex
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from traitlets import Float, Integer, List, Unicode

from amalthea.spawners.base import ProgressEvent, ServerAddress, Spawner, SpawnError
from amalthea.spawners.batch.script import (
    PORT_CMD,
    TemplateError,
    render,
    render_body,
    render_command,
    safe_value,
)
from amalthea.spawners.batch.status import JobState, JobStatus, StatusPatterns

LAYER = "batch queue"

#: user_options keys a profile or the spawn form may set, and the trait each one overrides
USER_OPTION_TRAITS = {
    "partition": "req_partition",
    "queue": "req_partition",
    "runtime": "req_runtime",
    "memory": "req_memory",
    "cores": "req_cores",
    "gpus": "req_gpus",
    "account": "req_account",
}


class BatchSpawner(Spawner):
    """Configure the templates and patterns below for a system without a built-in subclass."""

    ip = Unicode(
        "0.0.0.0",
        help="Address the server listens on, on the node; the hub connects to the "
        "node's name (host_cmd) or to what the server reports.",
    ).tag(config=True)
    batch_script = Unicode(
        "#!/bin/bash\n{{ body }}",
        help="Jinja2 template of the job script header; {{ body }} is the shared script body. "
        "Variables: job_name, partition, runtime, memory_mb, cores, gpus, account, out_file, "
        "err_file, job_dir, username, server_name, extra_directives.",
    ).tag(config=True)
    exec_prefix = Unicode(
        "sudo -n -u {{ username }}",
        help="Prefix of every queue command, rendered with username; '' runs them as the hub's "
        "own user (then jobs run as that user too).",
    ).tag(config=True)
    submit_cmd = Unicode("", help="Submit command; the job script arrives on stdin.").tag(
        config=True
    )
    query_cmd = Unicode("", help="Command printing one job's state; {{ job_id }} is set.").tag(
        config=True
    )
    cancel_cmd = Unicode("", help="Command cancelling a job; {{ job_id }} is set.").tag(config=True)
    job_id_regex = Unicode(
        r"(\d+)", help="Regex for the job id in submit_cmd's output (group 1)."
    ).tag(config=True)
    client_env = List(
        Unicode(),
        ["PATH", "LANG", "LC_ALL", "SLURM_CONF", "PBS_CONF_FILE", "LSF_ENVDIR", "SGE_ROOT",
         "SGE_CELL", "CONDOR_CONFIG"],
        help="Hub environment variables passed to queue commands. Nothing else is: with "
        "submission that exports the environment into the job, the hub's secrets would leak.",
    ).tag(config=True)  # fmt: skip
    job_dir = Unicode(
        "{{ home }}/.amalthea/jobs",
        help="Directory (on shared storage seen by the hub and the nodes) for the job's output "
        "and address files; rendered with username, home, server_name.",
    ).tag(config=True)
    host_cmd = Unicode("hostname", help="Shell command printing the node's name as the hub reaches it.").tag(config=True)  # fmt: skip
    port_cmd = Unicode(PORT_CMD, help="Shell command printing a free port on the node.").tag(
        config=True
    )
    req_partition = Unicode("", help="Partition / queue to submit to.").tag(config=True)
    req_runtime = Unicode("", help="Wall-time limit, e.g. '8:00:00'.").tag(config=True)
    req_memory = Unicode("", help="Memory, e.g. '4G'; defaults to mem_limit.").tag(config=True)
    req_cores = Integer(0, help="Cores; defaults to cpu_limit rounded up, else 1.").tag(config=True)
    req_gpus = Integer(0, help="GPUs.").tag(config=True)
    req_account = Unicode("", help="Account / project to charge.").tag(config=True)
    req_extra = List(Unicode(), help="Extra directive lines, verbatim, admin-only.").tag(
        config=True
    )
    req_prologue = Unicode("", help="Shell lines run before the server (module load ...).").tag(
        config=True
    )
    req_epilogue = Unicode("", help="Shell lines run after the server exits.").tag(config=True)
    query_interval = Float(1.0, help="Seconds between queue queries while starting.").tag(
        config=True
    )
    command_timeout = Float(30, help="Seconds a queue command may take.").tag(config=True)
    stop_wait = Float(10, help="Seconds stop() waits for the queue to confirm the job ended.").tag(
        config=True
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job_id = ""
        self.token = ""
        self.job_dir_path = ""
        self.address: ServerAddress | None = None
        self.last_status: JobStatus | None = None
        self._events: list[ProgressEvent] = []
        self._events_changed = asyncio.Event()
        self._start_finished = False
        self._reported: ServerAddress | None = None

    # ---- per-system hooks -------------------------------------------------------------------
    status_patterns = StatusPatterns(pending=r"^PENDING", running=r"^RUNNING")

    def parse_status(self, returncode: int, stdout: str, stderr: str) -> JobStatus:
        """Turn query_cmd's result into a JobStatus; systems with odd output override this."""
        return self.status_patterns.parse(returncode, stdout, stderr)

    async def queue_position(self) -> str:
        """A phrase like 'position 3 of 7' for a pending job, or '' when the system can't say."""
        return ""

    def job_script(self) -> str:
        """The job script start() would submit (for admins checking their templates, and tests)."""
        self.token = self.token or secrets.token_hex(8)
        return self._render_script(self._template_values())

    # ---- the spawner contract ---------------------------------------------------------------
    async def start(self) -> ServerAddress:
        self._events, self._start_finished = [], False  # a new start, a new progress story
        try:
            return await self._start()
        except SpawnError as e:
            self._emit(ProgressEvent(100, e.user_message, failed=True))
            raise
        finally:
            self._start_finished = True
            self._events_changed.set()

    async def _start(self) -> ServerAddress:
        if self.pids_limit:
            raise SpawnError(
                f"{type(self).__name__} cannot enforce pids_limit: batch systems have no "
                "per-job process limit to request. Unset it for this spawner "
                "(docs/spawners/limits.md).",
                layer="spawner",
            )
        self.token = secrets.token_hex(8)
        values = self._template_values()
        script = self._render_script(values)
        mkdir = self._queue_cmd("mkdir -p -m 0700 {{ job_dir | q }}", values)
        await self._run_checked(mkdir, "create the job directory")
        submission = await self.prepare_submission(script, values)
        submit = self._queue_cmd(self.submit_cmd, values)
        out = await self._run_checked(submit, "submit the job", stdin=submission)
        job_id = self._parse_job_id(out)
        self.job_id = job_id
        self.log.info(
            "Submitted %s job %s for %s", type(self).__name__, job_id, self.context.username
        )
        self._emit(ProgressEvent(10, f"Submitted batch job {job_id}"))
        return await self._wait_for_address()

    async def prepare_submission(self, script: str, values: dict[str, Any]) -> str:
        """What submit_cmd reads on stdin: the script, or (HTCondor) a description naming it."""
        return script

    async def _wait_for_address(self) -> ServerAddress:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            status = await self._query()
            if status.state is JobState.GONE:
                tail = await self.logs(20)
                why = " ".join(filter(None, [status.raw, status.reason])) or "no longer queued"
                raise SpawnError(
                    f"Batch job {self.job_id} ended before the server started ({why}).",
                    layer=LAYER,
                    log_tail=tail,
                )
            if status.state is JobState.PENDING:
                where = await self.queue_position()
                msg = f"Job {self.job_id} is queued ({status.raw}" + (
                    f", {status.reason})" if status.reason and status.reason != "None" else ")"
                )
                self._emit(ProgressEvent(30, msg + (f": {where}" if where else "")))
            elif status.state is JobState.RUNNING:
                self._emit(ProgressEvent(60, f"Job {self.job_id} is running on {status.host or 'a node'}; waiting for the server"))  # fmt: skip
                # with a report URL, only the server's own report counts: the address file is
                # written before the server listens, so its port may be taken by then
                pulled = None if self.context.report_url else await self._read_address()
                address = self._reported or pulled
                if address:
                    self.address = address
                    self._emit(ProgressEvent(90, f"Server is starting at {address.url}"))
                    return address
            await asyncio.sleep(self.query_interval)
        await self.stop(now=True)
        raise SpawnError(
            f"Batch job did not start a server within {self.start_timeout:.0f} s "
            f"(last state: {self.last_status.raw if self.last_status else 'unknown'}); cancelled it.",
            layer=LAYER,
            log_tail=await self.logs(20),
        )

    async def poll(self) -> int | None:
        if not self.job_id:
            return 0
        status = await self._query()
        if status.state is JobState.UNKNOWN:
            self.log.warning("Could not query job %s: %s", self.job_id, status.reason)
            return None
        if status.state is JobState.PENDING and self.address is not None:
            # it ran, and is queued again: preempted and requeued; its server is gone
            self.log.warning(
                "Job %s was requeued (%s); its server is gone", self.job_id, status.raw
            )
            return 1
        if status.state is JobState.GONE:
            self.log.info("Job %s ended: %s %s", self.job_id, status.raw, status.reason)
            return status.exit_status
        return None

    async def stop(self, now: bool = False) -> None:
        if not self.job_id:
            return
        values = self._template_values()
        cancel = self._queue_cmd(self.cancel_cmd, values)
        rc, _, err = await self._run(cancel)
        if rc != 0:
            self.log.info("%s said: %s", shlex.join(cancel), err.strip())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_wait
        while loop.time() < deadline:
            if (await self._query()).state is JobState.GONE:
                break
            await asyncio.sleep(0.2)
        else:
            self.log.warning(
                "Job %s still listed %.0f s after cancelling", self.job_id, self.stop_wait
            )
        self.job_id = ""
        self.address = None
        self._reported = None

    async def progress(self) -> AsyncIterator[ProgressEvent]:
        seen = 0
        while True:
            self._events_changed.clear()
            while seen < len(self._events):
                event = self._events[seen]
                seen += 1
                yield event
                if event.ready or event.failed:
                    return
            if self._start_finished:  # before start() it waits: events are still to come
                return
            await self._events_changed.wait()

    def report_address(self, ip: str, port: int) -> None:
        """The hub calls this when the server POSTs its address to ``report_url``."""
        self._reported = ServerAddress(ip, int(port))

    def get_state(self) -> dict[str, Any]:
        if not self.job_id:
            return {}
        state: dict[str, Any] = {"job_id": self.job_id, "token": self.token, "job_dir": self.job_dir_path}  # fmt: skip
        if self.address:
            state.update(self.address.as_state())
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.job_id = str(state.get("job_id", ""))
        self.token = str(state.get("token", ""))
        self.job_dir_path = str(state.get("job_dir", ""))
        self.address = ServerAddress.from_state(state) or self.address

    async def logs(self, lines: int = 50) -> list[str]:
        """The tail of the job's stderr file (where jupyter servers log), else its stdout."""
        for suffix in (".err", ".out"):
            text = await self._read_job_file(suffix)
            if text and text.strip():
                return text.splitlines()[-lines:]
        return []

    # ---- helpers ----------------------------------------------------------------------------
    def _emit(self, event: ProgressEvent) -> None:
        if self._events and self._events[-1].message == event.message:
            return
        self._events.append(event)
        self._events_changed.set()

    def _template_values(self) -> dict[str, Any]:
        name = self.context.username
        try:
            home = pwd.getpwnam(name).pw_dir
        except KeyError:
            home = f"/home/{name}"
        base = {"username": name, "server_name": self.context.server_name, "home": home}
        if not self.job_dir_path:
            self.job_dir_path = render(self.job_dir, "BatchSpawner.job_dir", base)
        files = f"{self.job_dir_path}/{self.context.server_name or 'default'}-{self.token}"
        return {
            **base,
            "job_id": self.job_id,
            "job_dir": self.job_dir_path,
            "job_name": safe_value("job name", f"amalthea-{name}-{self.context.server_name}".rstrip("-")),
            "out_file": files + ".out",
            "err_file": files + ".err",
            "addr_file": files + ".addr",
            "script_file": files + ".sh",
            **self._requests(),
        }  # fmt: skip

    def _requests(self) -> dict[str, Any]:
        """Resource requests: traits, then profile / form values from user_options."""
        values = {trait: getattr(self, trait) for trait in set(USER_OPTION_TRAITS.values())}
        for key, trait in USER_OPTION_TRAITS.items():
            if self.context.user_options.get(key) not in (None, ""):
                values[trait] = self.context.user_options[key]
        try:
            memory = values["req_memory"] or self.mem_limit
            memory_mb = math.ceil(_bytes(memory) / 1024**2) if memory else 0
            cores = int(values["req_cores"]) or math.ceil(self.cpu_limit_cores or 1)
            gpus = int(values["req_gpus"] or 0)
            return {
                "partition": safe_value("partition", values["req_partition"]),
                "runtime": safe_value("runtime", values["req_runtime"]),
                "account": safe_value("account", values["req_account"]),
                "memory_mb": memory_mb,
                "cores": cores,
                "gpus": gpus,
                "extra_directives": list(self.req_extra),
            }
        except (TemplateError, ValueError) as e:
            raise SpawnError(f"Invalid batch job request: {e}", layer=LAYER) from e

    def _render_script(self, values: dict[str, Any]) -> str:
        env = self.build_env()
        # queue commands run with a scrubbed environment (client_env), so the job would
        # otherwise start without these
        env.setdefault("HOME", values["home"])
        env.setdefault("USER", values["username"])
        env.setdefault("LOGNAME", values["username"])
        if self.context.report_url:
            env["AMALTHEA_REPORT_URL"] = self.context.report_url
        try:
            body = render_body(
                command=self.command(),
                env=env,
                job_dir=values["job_dir"],
                addr_file=values["addr_file"],
                ip=self.ip,
                prefix=self.context.url_prefix,
                host_cmd=self.host_cmd,
                port_cmd=self.port_cmd,
                prologue=self.req_prologue,
                epilogue=self.req_epilogue,
            )
            return render(
                self.batch_script, f"{type(self).__name__}.batch_script", {**values, "body": body}
            )
        except TemplateError as e:
            raise SpawnError(f"Cannot write the job script: {e}", layer=LAYER) from e

    def _queue_cmd(self, template: str, values: dict[str, Any]) -> list[str]:
        name = type(self).__name__
        if not template:
            raise SpawnError(f"{name} has no command configured for this step.", layer=LAYER)
        prefix = render_command(self.exec_prefix, f"{name}.exec_prefix", values)
        return prefix + render_command(template, name, values)

    def _parse_job_id(self, output: str) -> str:
        match = re.search(self.job_id_regex, output)
        if not match:
            raise SpawnError(
                f"Could not find a job id in the submit command's output {output.strip()!r} "
                f"with job_id_regex={self.job_id_regex!r}.",
                layer=LAYER,
            )
        return match.group(1)

    async def _query(self) -> JobStatus:
        rc, out, err = await self._run(self._queue_cmd(self.query_cmd, self._template_values()))
        self.last_status = self.parse_status(rc, out, err)
        return self.last_status

    async def _read_address(self) -> ServerAddress | None:
        text = await self._read_job_file(".addr")
        if not text or ":" not in text:
            return None
        host, _, port = text.strip().rpartition(":")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
            ip = str(infos[0][4][0])
        except OSError:
            ip = host  # leave name resolution to the proxy
        return ServerAddress(ip, int(port))

    async def _read_job_file(self, suffix: str) -> str | None:
        if not self.token or not self.job_dir_path:
            return None
        path = f"{self.job_dir_path}/{self.context.server_name or 'default'}-{self.token}{suffix}"
        try:
            # job files live on shared storage (NFS) that may be slow: keep the loop free
            return await asyncio.to_thread(Path(path).read_text, errors="replace")
        except FileNotFoundError:
            return None
        except PermissionError:
            # the hub is not root: read as the user, like every other queue command
            prefix = render_command(self.exec_prefix, "exec_prefix", self._template_values())
            rc, out, _ = await self._run([*prefix, "cat", path])
            return out if rc == 0 else None

    async def _run(self, cmd: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        env = {k: os.environ[k] for k in self.client_env if k in os.environ}
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError as e:
            raise SpawnError(
                f"{cmd[0]!r} was not found on the hub host: install the batch system's client "
                f"commands or fix {type(self).__name__}.exec_prefix / submit_cmd.",
                layer=LAYER,
            ) from e
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                self.command_timeout,
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return 124, "", f"{shlex.join(cmd)} took more than {self.command_timeout} s"
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def _run_checked(self, cmd: list[str], what: str, stdin: str | None = None) -> str:
        rc, out, err = await self._run(cmd, stdin)
        if rc != 0:
            raise SpawnError(
                f"Could not {what}: {shlex.join(cmd)} exited with {rc}: {(err or out).strip()}",
                layer=LAYER,
            )
        return out


def _bytes(value: int | str) -> int:
    from amalthea.spawners.units import parse_memory

    return parse_memory(value)
