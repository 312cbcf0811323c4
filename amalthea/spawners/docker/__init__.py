"""Docker spawner: one container per server, through the Docker Engine API (aiodocker).

Needs the ``docker`` extra: ``pip install 'amalthea[docker]'``. See docs/spawners/docker.md.
"""

from amalthea.spawners.docker._spawner import DockerSpawner

__all__ = ["DockerSpawner"]
