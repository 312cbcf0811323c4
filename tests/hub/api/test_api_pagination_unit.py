"""Pure pagination parsing and envelope (protocol §6)."""

from __future__ import annotations

import pytest

from amalthea.hub.web.api.pagination import (
    PaginationError,
    envelope,
    parse_page,
    wants_envelope,
)


@pytest.mark.parametrize(
    ("offset", "limit", "env", "expected"),
    [
        (None, None, False, (0, 200)),
        (None, None, True, (0, 50)),
        ("5", "10", True, (5, 10)),
        ("-5", "-10", True, (5, 10)),
        ("2.0", "1000", False, (2, 200)),
        ("0", "0", True, (0, 1)),
    ],
)
def test_parse_page(offset, limit, env, expected):
    page = parse_page(offset, limit, env)
    assert (page.offset, page.limit) == expected


@pytest.mark.parametrize("bad", ["abc", "1e999", "nan", "-3e27"])
def test_parse_page_rejects(bad):
    with pytest.raises(PaginationError):
        parse_page(bad, None, True)


def test_envelope_next_url_keeps_other_params():
    page = parse_page("0", "2", True)
    body = envelope([1, 2], page, 5, "http://h/hub/api/users?name_filter=a&limit=2")
    nxt = body["_pagination"]["next"]
    assert nxt == {
        "offset": 2,
        "limit": 2,
        "url": "http://h/hub/api/users?name_filter=a&limit=2&offset=2",
    }
    assert envelope([1], parse_page("4", "2", True), 5, "http://h/x")["_pagination"]["next"] is None


def test_wants_envelope():
    assert wants_envelope("application/json, application/jupyterhub-pagination+json")
    assert not wants_envelope("application/json")
    assert not wants_envelope(None)
