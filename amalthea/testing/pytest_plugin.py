"""pytest plugin registered under the ``pytest11`` entry point ``amalthea``.

Fixtures for our own tests and for plugin authors' tests. Kept import-light: heavy fixtures
live in their own modules and are imported lazily.

- ``amalthea_hub``: a running hub (dummy authenticator, local-shared spawner) in a temp dir;
  see :class:`amalthea.testing.hub.RunningHub`.
- ``amalthea_hub_factory``: ``factory(**start_hub_kwargs)`` for hubs with your own config; all
  are stopped (servers and proxy included) at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def amalthea_hub_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from amalthea.testing.hub import start_hub

    hubs: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        path = kwargs.pop("tmp_path", None) or tmp_path / f"hub{len(hubs)}"
        hub = start_hub(path, **kwargs)
        hubs.append(hub)
        return hub

    yield factory
    for hub in hubs:
        hub.stop()


@pytest.fixture
def amalthea_hub(amalthea_hub_factory: Callable[..., Any]) -> Any:
    return amalthea_hub_factory()
