"""Config validation: every ``c.Section.key`` in amalthea_config.py is checked once, at load.

Unknown keys of known classes and invalid values stop startup with a message naming the key, the
bad value and what is allowed (with a "did you mean" for typos). Sections for classes we do not
know (another plugin's) are left alone.
"""

from __future__ import annotations

import difflib
from typing import Any

from traitlets import HasTraits, TraitError
from traitlets.config import Config

__all__ = ["ConfigError", "validate_config"]


class ConfigError(Exception):
    pass


def _classes(roots: list[type]) -> dict[str, tuple[type, type]]:
    """Section name -> (class, concrete root class it belongs to)."""
    out: dict[str, tuple[type, type]] = {}
    for root in roots:
        for cls in root.__mro__:
            if (
                isinstance(cls, type)
                and issubclass(cls, HasTraits)
                and cls.__name__
                not in (
                    "HasTraits",
                    "HasDescriptors",
                    "Configurable",
                    "LoggingConfigurable",
                    "SingletonConfigurable",
                    "Application",
                )
            ):
                out.setdefault(cls.__name__, (cls, root))
    return out


def validate_config(config: Config, roots: list[type]) -> list[str]:
    """Raise ConfigError for bad keys/values; return warnings for unknown sections."""
    known = _classes(roots)
    warnings = []
    for section, values in config.items():
        if not isinstance(values, Config):
            continue
        found = known.get(section)
        if found is None:
            warnings.append(f"c.{section} is not used by the configured classes; ignored.")
            continue
        cls, root = found
        traits = cls.class_traits(config=True)  # type: ignore[attr-defined]
        for key, value in values.items():
            if key not in traits:
                close = difflib.get_close_matches(key, list(traits), n=3)
                hint = (
                    f" Did you mean {', '.join('c.' + section + '.' + c for c in close)}?"
                    if close
                    else ""
                )
                raise ConfigError(
                    f"Unknown setting c.{section}.{key} (value {value!r}).{hint} "
                    f"Settings of {section}: {', '.join(sorted(traits))}."
                )
            probe: Any = root.__new__(root)  # type: ignore[call-overload]  # traits, no __init__
            try:
                traits[key]._validate(probe, value)
            except TraitError as e:
                raise ConfigError(
                    f"Invalid setting c.{section}.{key} = {value!r}: {e} "
                    f"Allowed: {traits[key].info()}."
                ) from None
            except Exception as e:
                raise ConfigError(f"Invalid setting c.{section}.{key} = {value!r}: {e}") from None
    return warnings
