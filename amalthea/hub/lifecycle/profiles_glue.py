"""Profiles in the hub: ``c.Amalthea.profiles`` becomes a spawn form, a check, spawner settings.

The rules live in :mod:`amalthea.spawners.profiles` (pure); this module only connects them to
the hub, with one principle: *check at the door, apply at build*.

- Startup (:func:`install`): the list is loaded and checked once; every setting a profile fixes
  or lets people choose must be a setting of the configured spawner class, so a GPU profile on a
  spawner that cannot give GPUs is a startup error, not a silently ignored key.
- Spawn page: :meth:`ProfileGlue.options_form` draws only the profiles the server owner's groups
  may pick, pre-filled with the server's last choice; :meth:`ProfileGlue.options_from_form`
  reads the post back (``hub.extras["options_form"]`` / ``["options_from_form"]``).
- Every spawn, whichever way it comes (form, REST ``user_options``, a visit to a stopped
  server): :meth:`ProfileGlue.resolve` on ``ServerManager.resolve_options`` checks the options
  against the owner's groups before the server turns pending and refuses with 400 and the
  person-facing message ("profile 'gpu' is only for members of: ml-team"). What is stored and
  handed to the spawner is the normalised choice ``{"profile": slug, <option>: value}``.
  No options (an API POST without body) means the server's last choice, checked again: an
  entitlement that was withdrawn is not kept by reusing an old choice.
- Building the spawner: :meth:`ProfileGlue.apply` sets the profile's settings on it. No
  entitlement check there: the options passed the door already, and a hub restarted with
  running servers rebuilds spawners without knowing the owners' groups.

Entitlement follows the server's owner, not whoever clicks: an admin starting someone else's
server gets that person's profiles.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select as sql_select
from traitlets import TraitError

from amalthea.hub.lifecycle.manager import SpawnerFactory, SpawnRefused
from amalthea.hub.store import queries
from amalthea.hub.store.models import Server, User
from amalthea.spawners.base import SpawnContext, Spawner
from amalthea.spawners.profiles import (
    Profile,
    ProfileConfigError,
    ProfileError,
    form_to_user_options,
    load_profiles,
    render_form,
)
from amalthea.spawners.profiles import select as select_profile

__all__ = ["ProfileGlue", "install", "setting_names"]

log = logging.getLogger("amalthea.profiles")


def _aliases(spawner_class: type) -> dict[str, str]:
    """Profile keys that mean a differently named setting on this spawner (gpus -> req_gpus)."""
    try:
        from amalthea.spawners.batch.base import USER_OPTION_TRAITS, BatchSpawner
    except ImportError:  # pragma: no cover - batch support is part of the package
        return {}
    return dict(USER_OPTION_TRAITS) if issubclass(spawner_class, BatchSpawner) else {}


def setting_names(spawner_class: type) -> set[str]:
    """Names a profile may set on ``spawner_class``: its config traits and their aliases."""
    names = set(spawner_class.class_trait_names(config=True))  # type: ignore[attr-defined]
    return names | set(_aliases(spawner_class))


class ProfileGlue:
    def __init__(self, db: Any, profiles: Sequence[Profile], spawner_class: type) -> None:
        self.db = db
        self.profiles = list(profiles)
        self.spawner_class = spawner_class
        self._aliases = _aliases(spawner_class)
        # the door already checked entitlement; building a spawner must not need the groups
        self._trusted = [dataclasses.replace(p, allowed_groups=()) for p in self.profiles]

    # ---- startup ---------------------------------------------------------------------------
    def check_settings(self) -> None:
        """ProfileConfigError if a profile sets something the spawner class does not have."""
        known = setting_names(self.spawner_class)
        traits = self.spawner_class.class_traits(config=True)  # type: ignore[attr-defined]
        name = self.spawner_class.__name__
        for profile in self.profiles:
            where = f"c.Amalthea.profiles: profile '{profile.slug}'"
            targets = [(k, v, True) for k, v in profile.overrides.items()]
            targets += [(o.override, o.default, o.default is not None) for o in profile.options]
            for key, value, has_value in targets:
                if key not in known:
                    raise ProfileConfigError(
                        f"{where} sets {key!r}, which is not a setting of {name} (the "
                        f"configured spawner_class), so it could not take effect. Remove it, or "
                        f"use a spawner that has it. Settings of {name}: {', '.join(sorted(known))}"
                    )
                trait = traits.get(self._aliases.get(key, key))
                if has_value and trait is not None:
                    cls: Any = self.spawner_class
                    probe = cls.__new__(cls)  # trait storage without running __init__
                    try:
                        trait._validate(probe, value)
                    except TraitError as e:
                        raise ProfileConfigError(f"{where}: {key}={value!r}: {e}") from e

    # ---- the spawn page --------------------------------------------------------------------
    async def options_form(self, username: str, server_name: str = "") -> str:
        async with self.db.session() as s:
            user = await queries.user_by_name(s, username)
            if user is None:
                return ""
            last = await self._last_options(s, user.id, server_name)
        return render_form(self.profiles, [g.name for g in user.groups], last)

    @staticmethod
    def options_from_form(fields: Mapping[str, Any]) -> dict[str, Any]:
        return form_to_user_options(fields)

    # ---- the door --------------------------------------------------------------------------
    async def resolve(
        self, user: User, server_name: str, options: dict[str, Any] | None
    ) -> dict[str, Any]:
        if options is None:
            async with self.db.session() as s:
                options = await self._last_options(s, user.id, server_name)
        try:
            choice = select_profile(self.profiles, [g.name for g in user.groups], options)
        except ProfileError as e:
            log.info("refused server options for %s: %s", user.name, e)
            raise SpawnRefused(str(e), status=400) from None
        return choice.user_options

    async def _last_options(self, s: Any, user_id: int, server_name: str) -> dict[str, Any]:
        stmt = sql_select(Server.user_options).where(
            Server.user_id == user_id, Server.name == server_name
        )
        return dict((await s.execute(stmt)).scalar() or {})

    # ---- building the spawner ----------------------------------------------------------------
    def apply(self, spawner: Spawner, user_options: Mapping[str, Any]) -> None:
        try:
            choice = select_profile(self._trusted, [], user_options)
        except ProfileError as e:
            # a server started before the profile was removed from the config
            log.warning("server of %s: %s; keeping the spawner's defaults", spawner.context.username, e)  # fmt: skip
            return
        for key, value in choice.overrides.items():
            setattr(spawner, self._aliases.get(key, key), value)

    def wrap(self, factory: SpawnerFactory) -> SpawnerFactory:
        def make(ctx: SpawnContext) -> Spawner:
            spawner = factory(ctx)
            self.apply(spawner, ctx.user_options)
            return spawner

        return make


def install(hub: Any, raw: Sequence[Mapping[str, Any]], spawner_class: type) -> ProfileGlue | None:
    """Check ``raw`` (c.Amalthea.profiles) and wire it into ``hub``; None when there are none."""
    if not raw:
        return None
    try:
        glue = ProfileGlue(hub.db, load_profiles(raw), spawner_class)
    except ProfileConfigError as e:
        raise ProfileConfigError(f"c.Amalthea.profiles: {e}") from e
    glue.check_settings()
    servers = hub.servers
    servers.spawner_factory = glue.wrap(servers.spawner_factory)
    servers.resolve_options.append(glue.resolve)
    hub.extras.update(profiles=glue, options_form=glue.options_form,
                      options_from_form=glue.options_from_form)  # fmt: skip
    log.info("%d server profiles: %s", len(glue.profiles), ", ".join(p.slug for p in glue.profiles))
    return glue
