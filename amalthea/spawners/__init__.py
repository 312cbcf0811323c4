"""Spawners: start, watch and stop a user's single-user server somewhere.

The contract is :class:`amalthea.spawners.base.Spawner`; built-ins are registered in the
``amalthea.spawners`` entry-point group (see pyproject.toml).
"""

from amalthea.spawners.base import ProgressEvent, ServerAddress, SpawnContext, Spawner, SpawnError

__all__ = ["ProgressEvent", "ServerAddress", "SpawnContext", "SpawnError", "Spawner"]
