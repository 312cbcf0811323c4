"""The one owner of the spawn/stop/poll state machine (see ``states.py`` and ``manager.py``)."""

from amalthea.hub.lifecycle.manager import ServerManager, SpawnRefused
from amalthea.hub.lifecycle.states import ServerState

__all__ = ["ServerManager", "ServerState", "SpawnRefused"]
