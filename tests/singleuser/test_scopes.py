"""Scope-filter-aware access checks (amalthea.singleuser.scopes)."""

from typing import Any

import pytest

from amalthea.singleuser.scopes import Scope, access_granted, needs_owner_groups

REQUIRED = ["access:servers!server=alice/", "access:servers!user=alice"]
REQUIRED_NAMED = ["access:servers!server=alice/gpu", "access:servers!user=alice"]


@pytest.mark.parametrize(
    ("held", "required", "groups", "expected"),
    [
        (["access:servers!server=alice/"], REQUIRED, [], True),  # owner's OAuth token
        (["access:servers"], REQUIRED, [], True),  # admin: unfiltered
        (["access:servers!user=alice"], REQUIRED, [], True),
        (["access:servers!user=alice"], ["access:servers!server=alice/gpu"], [], True),
        (["access:servers!server=alice/gpu"], REQUIRED, [], False),  # other server of alice
        (["access:servers!server=alice/gpu"], REQUIRED_NAMED, [], True),
        (["access:servers!server=bob/"], REQUIRED, [], False),
        (["access:servers!user=bob"], REQUIRED, [], False),
        (["access:servers!user=alicex"], REQUIRED, [], False),  # prefix is not a match
        (["access:services", "read:users:name!user=bob"], REQUIRED, [], False),
        (["access:servers!group=lab"], REQUIRED, ["lab"], True),
        (["access:servers!group=lab"], REQUIRED, ["other"], False),
        (["access:servers!user"], REQUIRED, [], False),  # unresolved bare filter
        ([], REQUIRED, [], False),
        (["admin:servers"], REQUIRED, [], False),  # admin of servers is not access
    ],
)
def test_access_granted(
    held: list[str], required: list[str], groups: list[str], expected: Any
) -> None:
    assert access_granted(held, required, groups) is expected


def test_parse_and_group_detection() -> None:
    assert Scope.parse("access:servers!server=a/b") == Scope("access:servers", "server", "a/b")
    assert Scope.parse("read:users") == Scope("read:users")
    assert needs_owner_groups(["x", "access:servers!group=g"])
    assert not needs_owner_groups(["access:servers!user=a"])
