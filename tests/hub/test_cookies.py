"""The hub's Set-Cookie headers (web/cookies.py) are Tornado's, byte for byte."""

from __future__ import annotations

import datetime
import http.cookies
from typing import Any
from unittest import mock

import pytest
from tornado import httputil, web

from amalthea.hub.web.base import BaseHandler


def _bare(cls: type[web.RequestHandler], app: Any, request: Any) -> Any:
    h = web.RequestHandler.__new__(cls)
    web.RequestHandler.__init__(h, app, request)
    return h


def headers(h: Any) -> list[str]:
    return [m.OutputString(None) for m in getattr(h, "_new_cookie", {}).values()]


CASES: list[dict[str, Any]] = [
    {"name": "amalthea-session-id", "value": "abcDEF123_-", "path": "/", "httponly": True,
     "samesite": "Lax"},
    {"name": "x", "value": "needs=quoting;,\\\"", "path": "/hub/", "expires_days": 14,
     "httponly": True, "samesite": "Lax", "secure": True},
    {"name": "x", "value": "", "path": "/hub/",
     "expires": datetime.datetime(2020, 1, 2, 3, 4, 5, 678, tzinfo=datetime.UTC)},
    {"name": "x", "value": "v", "expires": datetime.datetime(2020, 1, 2, 3, 4, 5)},
    {"name": "x", "value": "v", "expires": 1_700_000_000.7, "path": None},
    {"name": "x", "value": "ünï", "path": "/"},
    {"name": "x", "value": b"bytes", "path": "/p/"},
]  # fmt: skip


@pytest.mark.parametrize("kw", CASES)
def test_same_header_as_tornado(kw: dict[str, Any]) -> None:
    for _ in range(3):  # expires_days: both must read the clock within the same second
        ours, theirs = _bare(BaseHandler, *_ctx()), _bare(web.RequestHandler, *_ctx())
        ours.set_cookie(**kw)
        theirs.set_cookie(**kw)
        if headers(ours) == headers(theirs):
            break
    assert headers(ours) == headers(theirs)


def _ctx() -> tuple[Any, Any]:
    app = web.Application(cookie_secret="s" * 32)
    return app, httputil.HTTPServerRequest(method="GET", uri="/", connection=mock.Mock())


def test_signed_and_cleared_cookies_match_and_replace() -> None:
    ours, theirs = _bare(BaseHandler, *_ctx()), _bare(web.RequestHandler, *_ctx())
    for h in (ours, theirs):
        h.set_cookie("a", "1", path="/")
        h.clear_cookie("a", path="/")  # the same name again: replaced, moved to the end
        h.set_cookie("b", "2")
    assert [s.split("=")[0] for s in headers(ours)] == ["a", "b"]
    assert headers(ours)[1] == headers(theirs)[1]
    assert headers(ours)[0].split("; ")[0] == headers(theirs)[0].split("; ")[0] == 'a=""'
    ours.set_signed_cookie("login", "sid-123", expires_days=1, path="/hub/", httponly=True)
    (signed,) = [m for m in ours._new_cookie.values() if m.key == "login"]
    assert ours.get_signed_cookie("login", value=signed.value) == b"sid-123"


@pytest.mark.parametrize(
    ("name", "value", "kw", "error"),
    [
        ("bad name", "v", {}, http.cookies.CookieError),
        ("semi;colon", "v", {}, http.cookies.CookieError),
        ("n", "a b", {}, ValueError),
        ("n", "v", {"path": "/a;b"}, http.cookies.CookieError),
        ("n", "v", {"samesite": "Lax; Secure"}, http.cookies.CookieError),
        ("expires", "v", {}, http.cookies.CookieError),  # a reserved attribute name
    ],
)
def test_refused_like_tornado(name: str, value: str, kw: dict[str, Any], error: type) -> None:
    for cls in (BaseHandler, web.RequestHandler):
        with pytest.raises(error):
            _bare(cls, *_ctx()).set_cookie(name, value, **kw)


def test_domain_and_max_age_go_through_tornado() -> None:
    ours, theirs = _bare(BaseHandler, *_ctx()), _bare(web.RequestHandler, *_ctx())
    for h in (ours, theirs):
        h.set_cookie("d", "v", domain="example.org", max_age=60)
    assert headers(ours) == headers(theirs)
    assert "Domain=example.org" in headers(ours)[0] and "Max-Age=60" in headers(ours)[0]
