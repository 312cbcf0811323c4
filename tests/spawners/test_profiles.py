"""Profiles: entitlements, option validation and the rendered form (pure functions)."""

from __future__ import annotations

import html.parser

import pytest

from amalthea.spawners.profiles import (
    ProfileConfigError,
    ProfileError,
    form_to_user_options,
    load_profiles,
    render_form,
    select,
)

CONFIG = [
    {"slug": "small", "display_name": "Small", "description": "1 core, 2 GB", "default": True,
     "mem_limit": "2G", "cpu_limit": 1},
    {"slug": "gpu", "display_name": "GPU node", "description": "1 GPU <fast>",
     "allowed_groups": ["ml-team"], "mem_limit": "16G", "cpu_limit": 4, "gpus": 1,
     "image": "lab:cuda", "spawner_overrides": {"req_partition": "gpu"},
     "options": {
         "runtime": {"type": "choice", "choices": ["1:00:00", "8:00:00"], "default": "1:00:00",
                     "display_name": "Run time", "override": "req_runtime"},
         "cores": {"type": "int", "min": 1, "max": 8, "default": 2, "override": "req_cores"},
         "scratch": {"type": "bool"},
         "project": {"type": "str", "pattern": "[a-z]{2,10}", "help": "2-10 lower-case letters"},
     }},
]  # fmt: skip


@pytest.fixture
def profiles():
    return load_profiles(CONFIG)


class Inputs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("input", "select"):
            self.fields.append(dict(attrs))


def test_user_outside_the_group_cannot_pick_gpu(profiles) -> None:
    with pytest.raises(ProfileError) as info:
        select(profiles, ["students"], {"profile": "gpu"})
    assert str(info.value) == "profile 'gpu' is only for members of: ml-team"


def test_member_gets_fixed_overrides_and_option_values(profiles) -> None:
    chosen = select(profiles, ["ml-team"], {"profile": "gpu", "runtime": "8:00:00", "cores": "4"})
    assert chosen.overrides == {
        "req_partition": "gpu", "image": "lab:cuda", "mem_limit": "16G", "cpu_limit": 4,
        "gpus": 1, "req_runtime": "8:00:00", "req_cores": 4, "scratch": False,
    }  # fmt: skip
    assert chosen.user_options == {
        "profile": "gpu",
        "runtime": "8:00:00",
        "cores": 4,
        "scratch": False,
    }


def test_default_profile_when_none_chosen(profiles) -> None:
    chosen = select(profiles, [], {})
    assert chosen.profile.slug == "small"
    assert chosen.overrides == {"mem_limit": "2G", "cpu_limit": 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"profile": "huge"}, "there is no profile 'huge'; choose one of: small, gpu"),
        ({"profile": "gpu", "cores": 12}, "option 'cores' of profile 'gpu' must be between 1 and 8; got 12"),
        ({"profile": "gpu", "cores": "two"}, "option 'cores' of profile 'gpu' must be a whole number; got 'two'"),
        ({"profile": "gpu", "runtime": "99:00:00"}, "must be one of: 1:00:00, 8:00:00; got '99:00:00'"),
        ({"profile": "gpu", "project": "X; rm"}, "does not have the expected form (2-10 lower-case letters)"),
        ({"profile": "gpu", "mem_limit": "1T"}, "profile 'gpu' has no option 'mem_limit'; it accepts: runtime, cores, scratch, project"),
        ({"profile": "small", "cores": 2}, "profile 'small' has no option 'cores'; it accepts: no options"),
    ],
)  # fmt: skip
def test_invalid_choices_are_refused_clearly(profiles, options, message) -> None:
    with pytest.raises(ProfileError) as info:
        select(profiles, ["ml-team"], options)
    assert message in str(info.value)


def test_form_has_only_entitled_profiles(profiles) -> None:
    outsider = render_form(profiles, ["students"])
    parser = Inputs()
    parser.feed(outsider)
    assert [f["value"] for f in parser.fields if f.get("name") == "profile"] == ["small"]
    assert "gpu" not in outsider and "GPU" not in outsider

    member = render_form(profiles, ["ml-team"], {"profile": "gpu", "cores": 3})
    parser = Inputs()
    parser.feed(member)
    radios = {f["value"]: "checked" in f for f in parser.fields if f.get("name") == "profile"}
    assert radios == {"small": False, "gpu": True}
    cores = next(f for f in parser.fields if f.get("name") == "gpu--cores")
    assert (cores["min"], cores["max"], cores["value"]) == ("1", "8", "3")
    assert "1 GPU &lt;fast&gt;" in member  # descriptions are escaped


def test_form_round_trip(profiles) -> None:
    posted = {"profile": ["gpu"], "gpu--runtime": ["8:00:00"], "gpu--scratch": ["true"],
              "small--ignored": ["x"], "_xsrf": ["t"]}  # fmt: skip
    options = form_to_user_options(posted)
    assert options == {"profile": "gpu", "runtime": "8:00:00", "scratch": "true"}
    assert select(profiles, ["ml-team"], options).overrides["scratch"] is True


def test_no_profiles_means_no_options() -> None:
    assert select([], [], {}).overrides == {}
    assert render_form([], []) == ""
    with pytest.raises(ProfileError, match="offers no server options"):
        select([], [], {"mem_limit": "1T"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([{"slug": "Big One"}], "slug 'Big One' must be lower-case"),
        ([{"slug": "a"}, {"slug": "a"}], "profile 'a' is defined twice"),
        ([{"slug": "a", "mem_limt": "2G"}], "unknown keys ['mem_limt']"),
        ([{"slug": "a", "mem_limit": "lots"}], "profile 'a': mem_limit='lots'"),
        ([{"slug": "a", "allowed_groups": "ml"}], "allowed_groups must be a list, e.g. ['ml']"),
        ([{"slug": "a", "options": {"x": {"type": "list"}}}], "type 'list' is not one of"),
        ([{"slug": "a", "options": {"x": {"type": "choice"}}}], "needs a non-empty 'choices'"),
        ([{"slug": "a", "options": {"x": {"type": "int", "max": 4, "default": 9}}}], "the default is not allowed"),
    ],
)  # fmt: skip
def test_bad_admin_config_is_refused_at_load(config, message) -> None:
    with pytest.raises(ProfileConfigError) as info:
        load_profiles(config)
    assert message in str(info.value)
