"""Profiles glue without a hub: startup checks against the spawner class, applying a choice."""

from __future__ import annotations

import pytest

from amalthea.hub.lifecycle.profiles_glue import ProfileGlue
from amalthea.spawners.base import SpawnContext
from amalthea.spawners.batch import SlurmSpawner
from amalthea.spawners.docker import DockerSpawner
from amalthea.spawners.local import LocalSharedSpawner
from amalthea.spawners.profiles import ProfileConfigError, load_profiles


def glue(raw: list[dict], cls: type = LocalSharedSpawner) -> ProfileGlue:
    g = ProfileGlue(None, load_profiles(raw), cls)
    g.check_settings()
    return g


def test_a_setting_the_spawner_lacks_stops_the_hub():
    with pytest.raises(ProfileConfigError) as info:
        glue([{"slug": "gpu", "gpus": 1}])
    message = str(info.value)
    assert "profile 'gpu' sets 'gpus', which is not a setting of LocalSharedSpawner" in message
    assert "mem_limit" in message  # lists what the spawner does have


def test_option_override_is_checked_too():
    with pytest.raises(ProfileConfigError, match="sets 'req_runtime'"):
        glue([{"slug": "a", "options": {"t": {"type": "str", "override": "req_runtime"}}}])


def test_bad_value_for_the_spawner_setting():
    with pytest.raises(ProfileConfigError, match="ip=3"):
        glue([{"slug": "a", "spawner_overrides": {"ip": 3}}])


def test_batch_short_names_mean_req_settings(tmp_path):
    g = glue([{"slug": "gpu", "gpus": 2, "mem_limit": "4G",
               "spawner_overrides": {"partition": "gpu"},
               "options": {"runtime": {"type": "choice", "choices": ["1:00:00", "8:00:00"],
                                       "default": "1:00:00"}}}], SlurmSpawner)  # fmt: skip
    spawner = SlurmSpawner(SpawnContext("a", "", {}, data_dir=str(tmp_path)))
    g.apply(spawner, {"profile": "gpu", "runtime": "8:00:00"})
    assert (spawner.req_gpus, spawner.req_partition, spawner.req_runtime) == (2, "gpu", "8:00:00")
    assert spawner.mem_limit == "4G"


def test_apply_ignores_entitlement_and_survives_a_removed_profile(tmp_path):
    g = glue([{"slug": "big", "allowed_groups": ["x"], "image": "lab:big", "cpu_limit": 2}],
             DockerSpawner)  # fmt: skip
    spawner = DockerSpawner(SpawnContext("a", "", {}, data_dir=str(tmp_path)))
    g.apply(spawner, {"profile": "big"})  # checked at the door; groups unknown here
    assert (spawner.image, spawner.cpu_limit) == ("lab:big", 2)
    other = DockerSpawner(SpawnContext("a", "", {}, data_dir=str(tmp_path)))
    default_image = other.image
    g.apply(other, {"profile": "gone"})
    assert other.image == default_image
