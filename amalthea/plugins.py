"""Plugin discovery: short names in entry-point groups, resolved to classes.

Users write ``c.Amalthea.spawner_class = "docker"``; a dotted path or a class works too.
Loading distinguishes "no such plugin" (typo: list what is installed) from "found but
broken" (an ImportError inside the plugin, usually a missing optional dependency).
"""

from __future__ import annotations

import functools
import importlib
from abc import ABCMeta
from importlib.metadata import EntryPoints, PackageNotFoundError, distribution, entry_points
from typing import Any, cast

from traitlets import MetaHasTraits, TraitError, Type

AUTHENTICATORS = "amalthea.authenticators"
SPAWNERS = "amalthea.spawners"
PROXIES = "amalthea.proxies"


class ABCTraitletsMeta(MetaHasTraits, ABCMeta):
    """Metaclass so plugin contracts can be both configurable and abstract."""


class PluginLoadError(Exception):
    """A plugin was named but could not be loaded; the message says why and what to do."""


@functools.cache
def _installed_entry_points() -> EntryPoints:
    # each entry_points() call reads every installed distribution's metadata (~150 in a
    # JupyterLab venv); a hub start resolves plugins several times, and what is installed does
    # not change while the process runs
    return cast(EntryPoints, entry_points())  # a SelectableGroups on 3.11; .select works


@functools.cache
def _own_entry_points() -> EntryPoints:
    # our own plugins (every default) come from our own metadata alone, so a start that uses
    # only built-ins never reads the other ~150 distributions' (~20 ms of a restart, issue 3)
    try:
        return distribution("amalthea").entry_points
    except PackageNotFoundError:  # running from a source tree that is not installed
        return EntryPoints(())


def _group(group: str) -> EntryPoints:
    return _installed_entry_points().select(group=group)


def installed(group: str) -> dict[str, str]:
    """Short name -> ``module:Class`` for every plugin installed in ``group``."""
    return {ep.name: ep.value for ep in _group(group)}


def load(group: str, name: str) -> type:
    """Resolve a short name or ``package.module.Class`` path to a class.

    A built-in short name is Amalthea's own plugin even if another package reuses the name.
    """
    eps = {ep.name: ep for ep in _own_entry_points().select(group=group)}
    if name not in eps:
        eps = {ep.name: ep for ep in _group(group)} | eps
    if name in eps:
        try:
            return eps[name].load()  # type: ignore[no-any-return]
        except ImportError as e:
            raise PluginLoadError(
                f"The {group} plugin {name!r} is installed but cannot be imported: {e}. "
                f"It probably needs an optional dependency: pip install 'amalthea[all]'."
            ) from e
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise PluginLoadError(f"Cannot import {module_name!r} for plugin {name!r}: {e}") from e
        try:
            return getattr(module, attr)  # type: ignore[no-any-return]
        except AttributeError as e:
            raise PluginLoadError(f"Module {module_name!r} has no class {attr!r}.") from e
    choices = ", ".join(sorted(eps)) or "(none installed)"
    raise PluginLoadError(f"No {group} plugin called {name!r}. Installed: {choices}.")


class PluginType(Type):  # type: ignore[type-arg]
    """A ``Type`` trait that also accepts an entry-point short name."""

    def __init__(
        self, group: str, *args: Any, shown_default: str | None = None, **kwargs: Any
    ) -> None:
        self.group = group
        #: the short name ``--help`` shows as the default when a ``@default`` method picks it
        #: at runtime (otherwise help would show the base class, which is never used)
        self.shown_default = shown_default
        super().__init__(*args, **kwargs)

    def default_value_repr(self) -> str:
        if self.shown_default is not None:
            return repr(self.shown_default)
        return str(super().default_value_repr())

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = load(self.group, value)
            except PluginLoadError as e:
                raise TraitError(str(e)) from e
        return super().validate(obj, value)

    def info(self) -> str:
        names = ", ".join(sorted(installed(self.group)))
        return f"a short name ({names}) or a subclass of {self.klass!r}"
