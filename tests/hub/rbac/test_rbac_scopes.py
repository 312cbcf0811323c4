"""Table-driven tests of the pure scope algebra (protocol §4)."""

from __future__ import annotations

import pytest

from amalthea.hub.rbac import scopes as S
from amalthea.hub.rbac.vocabulary import BUILTIN, ScopeError

ALICE = S.Subject("user", "alice", ("g1",))
SVC = S.Subject("service", "websvc")
SERVER_TOKEN = S.Subject("user", "alice", server="alice/gpu")


@pytest.mark.parametrize(
    ("raw", "subject", "must_have", "must_not_have"),
    [
        # subscopes are added with the same filter, recursively
        (
            ["admin:users"],
            None,
            {
                "admin:auth_state",
                "users",
                "read:users",
                "list:users",
                "read:users:name",
                "read:users:groups",
                "read:users:activity",
                "users:activity",
                "delete:users",
                "read:roles:users",
            },
            {"servers", "tokens"},
        ),
        (
            ["read:users!user=bob"],
            None,
            {"read:users!user=bob", "read:users:name!user=bob", "read:users:activity!user=bob"},
            {"read:users"},
        ),
        # read:servers implies read:users:name, but not with a server filter
        (["read:servers!user=bob"], None, {"read:users:name!user=bob"}, set()),
        (
            ["read:servers!server=bob/x"],
            None,
            {"read:servers!server=bob/x"},
            {"read:users:name!server=bob/x"},
        ),
        (
            ["shares"],
            None,
            {
                "access:servers",
                "read:shares",
                "users:shares",
                "read:users:shares",
                "groups:shares",
                "read:groups:shares",
            },
            set(),
        ),
        (
            ["admin:servers"],
            None,
            {
                "admin:server_state",
                "servers",
                "read:servers",
                "start:servers",
                "delete:servers",
                "read:users:name",
            },
            set(),
        ),
        (
            ["admin:groups"],
            None,
            {
                "groups",
                "read:groups",
                "list:groups",
                "read:groups:name",
                "delete:groups",
                "read:roles:groups",
            },
            set(),
        ),
        (
            ["admin:services"],
            None,
            {"list:services", "read:services", "read:services:name", "read:roles:services"},
            set(),
        ),
        (
            ["read:roles"],
            None,
            {"read:roles:users", "read:roles:groups", "read:roles:services"},
            set(),
        ),
        # self: user owners only
        (
            ["self"],
            ALICE,
            {
                "read:users!user=alice",
                "servers!user=alice",
                "delete:servers!user=alice",
                "start:servers!user=alice",
                "tokens!user=alice",
                "read:tokens!user=alice",
                "access:servers!user=alice",
                "users:activity!user=alice",
                "read:shares!user=alice",
                "read:users:shares!user=alice",
            },
            {"self", "admin:users"},
        ),
        (["self"], SVC, set(), {"self"}),
        (["self"], None, set(), {"self"}),
        # bare filters
        (["read:users!user"], ALICE, {"read:users!user=alice"}, {"read:users!user"}),
        (["read:users!user"], SVC, set(), {"read:users!user"}),
        (["access:servers!server"], SERVER_TOKEN, {"access:servers!server=alice/gpu"}, set()),
        (["access:servers!server"], ALICE, set(), {"access:servers!server"}),
        (["read:services!service"], SVC, {"read:services!service=websvc"}, set()),
        # reduction: unfiltered swallows filtered copies; !user=u swallows !server=u/*
        (["read:users", "read:users!user=bob"], None, {"read:users"}, {"read:users!user=bob"}),
        (
            ["servers!user=bob", "servers!server=bob/x"],
            None,
            {"servers!user=bob"},
            {"servers!server=bob/x"},
        ),
        # group filters are symbolic
        (["read:users!group=g1"], None, {"read:users!group=g1", "read:users:name!group=g1"}, set()),
        # inherit kept for the resolver; invalid stored scopes dropped
        (["inherit"], ALICE, {"inherit"}, set()),
        (["read:users!bogus=1"], None, set(), {"read:users!bogus=1"}),
    ],
)
def test_expand(raw, subject, must_have, must_not_have):
    got = S.expand(raw, subject)
    assert must_have <= got, must_have - got
    assert not (must_not_have & got), must_not_have & got


def test_every_builtin_subscope_exists():
    for name, scope_def in BUILTIN.items():
        for sub in scope_def.subscopes:
            assert sub in BUILTIN, (name, sub)


def test_expansion_is_idempotent_and_reduced():
    for name in S.all_scopes():
        once = S.expand([name], ALICE)
        assert S.expand(once, ALICE) == once, name
        assert S.reduce(once) == once


HELD = S.expand(
    [
        "read:users!user=alice",
        "servers!server=bob/",
        "read:groups!group=g1",
        "read:services!service=svc",
        "access:servers!user=carol",
        "list:users!group=staff",
        "delete:users",
    ]
)


@pytest.mark.parametrize(
    ("scope", "kw", "expected"),
    [
        ("read:users", {"user": "alice"}, True),
        ("read:users", {"user": "bob"}, False),
        ("read:users", {}, False),
        ("read:users:name", {"user": "alice"}, True),
        ("servers", {"server": "bob/"}, True),
        ("servers", {"server": "bob/x"}, False),
        ("delete:servers", {"server": "bob/"}, True),
        ("servers", {"user": "bob"}, False),
        ("access:servers", {"server": "carol/any"}, True),  # !user covers !server
        ("access:servers", {"server": "carole/x"}, False),
        ("read:groups", {"group": "g1"}, True),
        ("read:groups", {"group": "g2"}, False),
        ("read:services", {"service": "svc"}, True),
        ("read:services", {"service": "other"}, False),
        ("list:users", {"user": "dave", "user_groups": ["staff"]}, True),
        ("list:users", {"user": "dave", "user_groups": ["other"]}, False),
        ("delete:users", {"user": "anyone"}, True),
        ("delete:users", {}, True),
        ("admin:users", {"user": "anyone"}, False),
        ("shutdown", {}, False),
    ],
)
def test_covers(scope, kw, expected):
    assert S.covers(HELD, scope, **kw) is expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("read:users", True),
        ("servers", True),
        ("shutdown", False),
        ("read:groups", True),
        ("delete:users", True),
        ("proxy", False),
    ],
)
def test_any_filter(scope, expected):
    assert S.any_filter(HELD, scope) is expected


GROUPS = {"alice": ["g1"], "bob": [], "carol": ["g1", "g2"]}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (["read:users"], ["read:users!user=alice"], {"read:users!user=alice"}),
        (["read:users!user=alice"], ["read:users!user=bob"], set()),
        (["read:users!group=g1"], ["read:users!user=alice"], {"read:users!user=alice"}),
        (["read:users!group=g1"], ["read:users!user=bob"], set()),
        (["servers!user=alice"], ["servers!server=alice/x"], {"servers!server=alice/x"}),
        (["servers!group=g2"], ["servers!server=carol/"], {"servers!server=carol/"}),
        (["admin:users"], ["read:users"], {"read:users"}),
        (["read:users"], ["admin:users"], {"read:users"}),
        (["proxy"], ["shutdown"], set()),
    ],
)
def test_intersect(a, b, expected):
    got = S.intersect(S.expand(a), S.expand(b), GROUPS)
    base_expected = S.expand(expected) if expected else frozenset()
    assert got == base_expected


@pytest.mark.parametrize(
    ("held", "wanted", "missing"),
    [
        (["self"], ["read:users!user=alice"], []),
        (["self"], ["read:users!user=bob"], ["read:users!user=bob"]),
        (["self"], ["admin:users"], ["admin:users"]),
        (["self"], ["servers!server=alice/gpu"], []),
        (["read:users!group=g1"], ["read:users!user=carol"], []),
        (["read:users!group=g1"], ["read:users!group=g1"], []),
        (["read:users!group=g1"], ["read:users!group=g2"], ["read:users!group=g2"]),
    ],
)
def test_not_covered(held, wanted, missing):
    got = S.not_covered(S.expand(held, ALICE), S.expand(wanted, ALICE), GROUPS)
    assert [m for m in missing if m in got] == missing
    if not missing:
        assert got == []


def test_filters_for_post_filtering():
    assert S.filters(HELD, "proxy") is None
    assert S.filters(HELD, "delete:users").unfiltered
    held = S.expand(["list:users!user=a", "list:users!group=g"])
    f = S.filters(held, "list:users")
    assert f.users == {"a"} and f.groups == {"g"} and not f.unfiltered
    assert f.allows_user("a") and f.allows_user("z", ["g"]) and not f.allows_user("z")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "all",
        "nope",
        "read:users!user=",
        "read:users!group",
        "read:users!kind=x",
        "servers!server=noslash",
        "custom:undefined",
    ],
)
def test_validate_rejects(bad):
    with pytest.raises(ScopeError):
        S.validate(bad)


@pytest.mark.parametrize(
    "good",
    [
        "read:users",
        "read:users!user=a",
        "read:users!user",
        "servers!server=a/",
        "servers!server",
        "read:groups!group=g",
        "inherit",
        "self",
        "access:services!service=x",
    ],
)
def test_validate_accepts(good):
    S.validate(good)


def test_custom_scopes():
    S.set_custom_scopes(
        {
            "custom:grades:read": {"description": "read grades"},
            "custom:grades:write": {"description": "write", "subscopes": ["custom:grades:read"]},
        }
    )
    try:
        S.validate("custom:grades:write!group=class1")
        got = S.expand(["custom:grades:write!user=bob"])
        assert "custom:grades:read!user=bob" in got
        with pytest.raises(ScopeError):
            S.set_custom_scopes({"custom:x1": {"description": "", "subscopes": ["read:users"]}})
        with pytest.raises(ScopeError):
            S.set_custom_scopes({"notcustom": {"description": ""}})
    finally:
        S.set_custom_scopes({})
    with pytest.raises(ScopeError):
        S.validate("custom:grades:read")


def test_access_scopes():
    assert S.server_access_scopes("alice", "") == [
        "access:servers!server=alice/",
        "access:servers!user=alice",
    ]
    assert S.service_access_scopes("svc") == ["access:services", "access:services!service=svc"]
    assert S.identify_scopes(ALICE) == {
        "read:users:name!user=alice",
        "read:users:groups!user=alice",
    }
