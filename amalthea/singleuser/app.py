"""``amalthea-singleuser``: jupyter_server + JupyterLab + Notebook, driven by a hub.

The composition root: validate the hub's environment up front (so a missing variable gives
one clear line instead of a traceback deep inside jupyter_server), then launch the server
with :class:`HubExtension` as the starter extension.
"""

from __future__ import annotations

import sys

from .hubenv import HubEnvironmentError, read_hub_environment

__all__ = ["main"]

_NO_ENV_NEEDED = {"-h", "--help", "--help-all", "--version", "--generate-config"}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not _NO_ENV_NEEDED.intersection(args):
        try:
            read_hub_environment()
        except HubEnvironmentError as exc:
            print(f"amalthea-singleuser: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
    # Imported only now: jupyter_server takes seconds to import, a config error should not.
    from .extension import HubExtension

    HubExtension.launch_instance(args)  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
