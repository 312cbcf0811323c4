"""Admin-defined server profiles: what people may choose on the spawn page or in ``user_options``.

Pure functions, no HTTP and no database, so the web form, the REST API and tests share them:

- :func:`load_profiles` checks the admin's configuration once, at startup;
- :func:`entitled` is the profiles a person's groups allow;
- :func:`select` turns submitted ``user_options`` into spawner overrides, or raises
  :class:`ProfileError` with a message fit to show the person;
- :func:`form_to_user_options` reads the posted form; :func:`render_form` draws it.

A profile in the configuration (``c.Amalthea.profiles = [...]``)::

    {"slug": "gpu", "display_name": "GPU node", "description": "1 GPU, 16 GB",
     "allowed_groups": ["ml-team"],          # empty or missing: everyone
     "mem_limit": "16G", "cpu_limit": 4, "gpus": 1, "image": "lab:cuda", "storage": "50G",
     "spawner_overrides": {"req_partition": "gpu"},   # any other spawner setting
     "options": {"runtime": {"type": "choice", "choices": ["1:00:00", "8:00:00"],
                             "default": "1:00:00", "display_name": "Run time",
                             "override": "req_runtime"}}}

Option types: ``int`` and ``float`` (with ``min``/``max``), ``str`` (with ``pattern``),
``bool``, ``choice`` (with ``choices``). An option's value overrides the spawner setting named
by ``override`` (default: the option's own name). Fixed values of a profile cannot be changed
by a person; only its options can.

Form fields are named ``profile`` and ``<slug>--<option>``, so every profile's options can be
in one form and only the chosen profile's are read.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

from amalthea.spawners.units import parse_cpu, parse_memory

__all__ = [
    "Option",
    "Profile",
    "ProfileConfigError",
    "ProfileError",
    "Selection",
    "entitled",
    "form_to_user_options",
    "load_profiles",
    "render_form",
    "select",
]

#: profile keys that are spawner settings, with the check applied at load time
FIXED_OVERRIDES: dict[str, Callable[[Any], object]] = {
    "image": str,
    "mem_limit": parse_memory,
    "cpu_limit": parse_cpu,
    "pids_limit": int,
    "gpus": int,
    "storage": parse_memory,
}
OPTION_TYPES = ("int", "float", "str", "bool", "choice")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ProfileConfigError(ValueError):
    """The admin's profile configuration is wrong; raised at startup, names the entry."""


class ProfileError(ValueError):
    """A person's choice is not allowed; the message is meant for them."""


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    display_name: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] = ()
    pattern: str = ""
    override: str = ""
    help: str = ""

    def convert(self, value: Any, profile: str) -> Any:
        """The checked, typed value; ProfileError says what was wrong and what is allowed."""
        where = f"option '{self.name}' of profile '{profile}'"
        if self.type == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "on", "yes")
            return bool(value)
        if self.type == "choice":
            for choice in self.choices:
                if str(choice) == str(value):
                    return choice
            raise ProfileError(f"{where} must be one of: {', '.join(map(str, self.choices))}; got {value!r}")  # fmt: skip
        if self.type in ("int", "float"):
            try:
                number: float = int(value) if self.type == "int" else float(value)
            except (TypeError, ValueError):
                raise ProfileError(f"{where} must be {'a whole number' if self.type == 'int' else 'a number'}; got {value!r}") from None  # fmt: skip
            if (self.min is not None and number < self.min) or (
                self.max is not None and number > self.max
            ):
                raise ProfileError(f"{where} must be between {_fmt(self.min)} and {_fmt(self.max)}; got {_fmt(number)}")  # fmt: skip
            return number
        text = str(value)
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise ProfileError(f"{where} does not have the expected form ({self.help or self.pattern}); got {text!r}")  # fmt: skip
        return text


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    description: str = ""
    allowed_groups: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    default: bool = False

    def allows(self, groups: Iterable[str]) -> bool:
        return not self.allowed_groups or bool(set(self.allowed_groups) & set(groups))


@dataclass(frozen=True)
class Selection:
    """What a valid choice means: the spawner settings to apply and the options to record."""

    profile: Profile | None
    overrides: dict[str, Any]
    user_options: dict[str, Any]


# ---- configuration --------------------------------------------------------------------------
def load_profiles(raw: Sequence[Mapping[str, Any]]) -> list[Profile]:
    """Check the admin's list once; errors name the profile and the key."""
    profiles: list[Profile] = []
    for index, entry in enumerate(raw):
        where = f"profiles[{index}]"
        slug = str(entry.get("slug", ""))
        if not _SLUG.match(slug):
            raise ProfileConfigError(f"{where}: slug {slug!r} must be lower-case letters, digits, '-' or '_'")  # fmt: skip
        where = f"profile '{slug}'"
        if any(p.slug == slug for p in profiles):
            raise ProfileConfigError(f"{where} is defined twice")
        known = {"slug", "display_name", "description", "allowed_groups", "spawner_overrides", "options", "default", *FIXED_OVERRIDES}  # fmt: skip
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ProfileConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        overrides = dict(entry.get("spawner_overrides", {}))
        for key, check in FIXED_OVERRIDES.items():
            if key in entry:
                try:
                    check(entry[key])
                except (TypeError, ValueError) as e:
                    raise ProfileConfigError(f"{where}: {key}={entry[key]!r}: {e}") from e
                overrides[key] = entry[key]
        groups = entry.get("allowed_groups", [])
        if isinstance(groups, str):
            raise ProfileConfigError(f"{where}: allowed_groups must be a list, e.g. [{groups!r}]")
        options = tuple(
            _load_option(name, spec, where) for name, spec in dict(entry.get("options", {})).items()
        )
        profiles.append(
            Profile(
                slug=slug,
                display_name=str(entry.get("display_name") or slug),
                description=str(entry.get("description", "")),
                allowed_groups=tuple(str(g) for g in groups),
                overrides=overrides,
                options=options,
                default=bool(entry.get("default", False)),
            )
        )
    return profiles


def _load_option(name: str, spec: Mapping[str, Any], profile: str) -> Option:
    where = f"{profile}: option '{name}'"
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise ProfileConfigError(f"{where}: name must be an identifier")
    kind = spec.get("type", "str")
    if kind not in OPTION_TYPES:
        raise ProfileConfigError(f"{where}: type {kind!r} is not one of {OPTION_TYPES}")
    if kind == "choice" and not spec.get("choices"):
        raise ProfileConfigError(f"{where}: a choice needs a non-empty 'choices' list")
    option = Option(
        name=name,
        type=kind,
        display_name=str(spec.get("display_name", name)),
        default=spec.get("default"),
        min=spec.get("min"),
        max=spec.get("max"),
        choices=tuple(spec.get("choices", ())),
        pattern=str(spec.get("pattern", "")),
        override=str(spec.get("override") or name),
        help=str(spec.get("help", "")),
    )
    if option.default is not None:
        try:
            option.convert(option.default, profile)
        except ProfileError as e:
            raise ProfileConfigError(f"{where}: the default is not allowed: {e}") from e
    return option


# ---- choosing ----------------------------------------------------------------------------------
def entitled(profiles: Sequence[Profile], groups: Iterable[str]) -> list[Profile]:
    groups = list(groups)
    return [p for p in profiles if p.allows(groups)]


def select(
    profiles: Sequence[Profile], groups: Iterable[str], user_options: Mapping[str, Any]
) -> Selection:
    """Check ``user_options`` (``{"profile": slug, <option>: value}``) for a person in ``groups``."""
    groups = list(groups)
    options = dict(user_options)
    if not profiles:
        if options:
            raise ProfileError(f"this hub offers no server options; got {sorted(options)}")
        return Selection(None, {}, {})
    slug = options.pop("profile", None)
    allowed = entitled(profiles, groups)
    if slug in (None, ""):
        if not allowed:
            raise ProfileError("none of the server profiles is available to you; ask an admin")
        profile = next((p for p in allowed if p.default), allowed[0])
    else:
        found = [p for p in profiles if p.slug == slug]
        if not found:
            raise ProfileError(f"there is no profile '{slug}'; choose one of: {', '.join(p.slug for p in allowed)}")  # fmt: skip
        profile = found[0]
        if not profile.allows(groups):
            raise ProfileError(f"profile '{slug}' is only for members of: {', '.join(profile.allowed_groups)}")  # fmt: skip
    by_name = {o.name: o for o in profile.options}
    unknown = sorted(set(options) - set(by_name))
    if unknown:
        accepted = ", ".join(by_name) or "no options"
        raise ProfileError(f"profile '{profile.slug}' has no option {', '.join(map(repr, unknown))}; it accepts: {accepted}")  # fmt: skip
    chosen: dict[str, Any] = {}
    for option in profile.options:
        if options.get(option.name) not in (None, ""):
            chosen[option.name] = option.convert(options[option.name], profile.slug)
        elif option.default is not None:
            chosen[option.name] = option.convert(option.default, profile.slug)
        elif option.type == "bool":
            chosen[option.name] = False
    overrides = dict(profile.overrides)
    overrides.update({by_name[name].override: value for name, value in chosen.items()})
    return Selection(profile, overrides, {"profile": profile.slug, **chosen})


def form_to_user_options(form: Mapping[str, Any]) -> dict[str, Any]:
    """Posted form fields (values may be lists, as web frameworks give them) -> user_options."""

    def first(value: Any) -> Any:
        return value[0] if isinstance(value, list | tuple) else value

    slug = str(first(form.get("profile", "")))
    options: dict[str, Any] = {"profile": slug} if slug else {}
    prefix = f"{slug}--"
    for key, value in form.items():
        if slug and key.startswith(prefix):
            options[key.removeprefix(prefix)] = first(value)
    return options


# ---- the form ----------------------------------------------------------------------------------
_FORM = """\
<fieldset class="amalthea-profiles">
  <legend>Server options</legend>
{%- for p in profiles %}
  <div class="profile">
    <label>
      <input type="radio" name="profile" value="{{ p.slug }}"{% if p.slug == selected %} checked{% endif %}>
      <strong>{{ p.display_name }}</strong>
    </label>
    {%- if p.description %}<p class="description">{{ p.description }}</p>{% endif %}
    {%- for o in p.options %}
    {%- set field = p.slug ~ "--" ~ o.name %}
    {%- set value = values.get(o.name, o.default) if p.slug == selected else o.default %}
    <label class="option" for="{{ field }}">{{ o.display_name }}
      {%- if o.type == "choice" %}
      <select id="{{ field }}" name="{{ field }}">
        {%- for c in o.choices %}
        <option value="{{ c }}"{% if value is not none and c|string == value|string %} selected{% endif %}>{{ c }}</option>
        {%- endfor %}
      </select>
      {%- elif o.type == "bool" %}
      <input type="checkbox" id="{{ field }}" name="{{ field }}" value="true"{% if value %} checked{% endif %}>
      {%- elif o.type in ("int", "float") %}
      <input type="number" id="{{ field }}" name="{{ field }}"{% if o.min is not none %} min="{{ o.min }}"{% endif %}{% if o.max is not none %} max="{{ o.max }}"{% endif %}{% if o.type == "float" %} step="any"{% endif %}{% if value is not none %} value="{{ value }}"{% endif %}>
      {%- else %}
      <input type="text" id="{{ field }}" name="{{ field }}"{% if o.pattern %} pattern="{{ o.pattern }}"{% endif %}{% if value is not none %} value="{{ value }}"{% endif %}>
      {%- endif %}
      {%- if o.help %}<small>{{ o.help }}</small>{% endif %}
    </label>
    {%- endfor %}
  </div>
{%- endfor %}
</fieldset>
"""


@functools.cache
def _template() -> jinja2.Template:
    # built on the first spawn form, not at import: the hub imports this module at startup
    import jinja2

    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(_FORM)


def render_form(
    profiles: Sequence[Profile],
    groups: Iterable[str],
    selected: Mapping[str, Any] | None = None,
) -> str:
    """The options form's HTML fragment, with only the profiles ``groups`` may pick.

    ``selected`` (previous user_options) pre-fills the form; empty string when there is
    nothing to choose.
    """
    allowed = entitled(profiles, groups)
    if not allowed:
        return ""
    values = dict(selected or {})
    slug = values.pop("profile", None)
    if slug not in {p.slug for p in allowed}:
        slug = next((p.slug for p in allowed if p.default), allowed[0].slug)
    return _template().render(profiles=allowed, selected=slug, values=values)


def _fmt(number: float | None) -> str:
    if number is None:
        return "any"
    return str(int(number)) if float(number).is_integer() else str(number)
