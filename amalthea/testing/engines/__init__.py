"""Real engines for tests: start them privately, cache what is slow to build.

Each module brings one engine up on this machine without touching the host's own
services (private sockets, state under a cache dir, no host-wide firewall changes) and
hands tests an address to talk to. They are plain functions so a pytest fixture, a
benchmark or a developer's shell can use them alike.
"""

from amalthea.testing.engines.apt import ensure_commands

__all__ = ["ensure_commands"]
