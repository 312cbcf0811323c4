"""Rendering job scripts and command lines from Jinja2 templates.

A job script is two templates: the system's header (``#SBATCH``, ``#PBS``, ... directives,
one per batch system) and one shared body, below, that every system runs on the node:

1. export the hub's environment (quoted: values never reach the shell unquoted);
2. pick the host name and a free port on the node, point ``JUPYTERHUB_SERVICE_URL`` at them;
3. write ``host:port`` to the address file (atomically: write + rename), which is how the hub
   learns where the server listens when nobody POSTs to ``report_url``;
4. exec the single-user command.

Values from users (partition, runtime, ...) end up in ``#`` directive lines, where quoting
does not help; :func:`safe_value` therefore refuses anything outside a small alphabet.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

import jinja2

# Free port on the node. There is a window between closing this socket and the server binding
# the port; on a node that hands out ports quickly the server fails to start and the job ends,
# which the spawner reports. Binding port 0 inside the server and reporting back (report_url)
# has no such window.
PORT_CMD = (
    "python3 -c 'import socket; s=socket.socket(); s.bind((\"\", 0)); print(s.getsockname()[1])'"
)

JOB_BODY = """\
set -e
cd {{ job_dir | q }}
{% for key, value in env.items() %}export {{ key }}={{ value | q }}
{% endfor %}
{{ prologue }}
AMALTHEA_HOST="${AMALTHEA_HOST:-$({{ host_cmd }})}"
AMALTHEA_PORT="${AMALTHEA_PORT:-$({{ port_cmd }})}"
export AMALTHEA_HOST AMALTHEA_PORT
export JUPYTERHUB_SERVICE_URL="http://{{ ip }}:${AMALTHEA_PORT}{{ prefix }}"
printf '%s:%s\\n' "$AMALTHEA_HOST" "$AMALTHEA_PORT" > {{ addr_file | q }}.tmp
mv {{ addr_file | q }}.tmp {{ addr_file | q }}
{% if epilogue %}{{ command }}
{{ epilogue }}{% else %}exec {{ command }}{% endif %}
"""

_SAFE = re.compile(r"^[A-Za-z0-9_.:,=+/@%\-\[\] ]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Shell scripts and command lines, not HTML: escaping is done by the `q` filter where needed.
_env = jinja2.Environment(  # noqa: S701
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=False
)
_env.filters["q"] = lambda value: shlex.quote(str(value))


class TemplateError(ValueError):
    """A template or a value put into it is unusable; the message names which."""


def safe_value(name: str, value: Any) -> str:
    """``value`` as text fit for a directive line; refuses newlines, quotes, ``$``, ``;``..."""
    text = str(value).strip()
    if not _SAFE.match(text):
        raise TemplateError(
            f"{name}={text!r} contains characters not allowed in a job script "
            "(allowed: letters, digits, space and _ . : , = + / @ % - [ ])"
        )
    return text


def render(template: str, what: str, values: Mapping[str, Any]) -> str:
    """Render ``template``; a missing variable or syntax error names ``what`` was rendered."""
    try:
        return _env.from_string(template).render(**values)
    except jinja2.TemplateError as e:
        raise TemplateError(f"cannot render {what}: {e}") from e


def render_command(template: str, what: str, values: Mapping[str, Any]) -> list[str]:
    """Render a command-line template and split it like a shell would (no shell runs it)."""
    return shlex.split(render(template, what, values))


def render_body(
    *,
    command: list[str],
    env: Mapping[str, str],
    job_dir: str,
    addr_file: str,
    ip: str,
    prefix: str,
    host_cmd: str,
    port_cmd: str,
    prologue: str = "",
    epilogue: str = "",
) -> str:
    bad = [k for k in env if not _ENV_NAME.match(k)]
    if bad:
        raise TemplateError(f"environment variable names not usable in a shell script: {bad}")
    return render(
        JOB_BODY,
        "the job script body",
        {
            "command": shlex.join(command),
            "env": dict(sorted(env.items())),
            "job_dir": job_dir,
            "addr_file": addr_file,
            "ip": safe_value("ip", ip),
            "prefix": safe_value("prefix", prefix),
            "host_cmd": host_cmd,
            "port_cmd": port_cmd,
            "prologue": prologue,
            "epilogue": epilogue,
        },
    )
