"""One real hub (subprocess + proxy) per test module; helpers to make users and tokens."""

from __future__ import annotations

import itertools

import httpx
import pytest

from amalthea.testing.hub import start_hub

_ids = itertools.count()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config = getattr(pytest, "_amalthea_hub_config", "")
    h = start_hub(
        tmp_path_factory.mktemp("hub"),
        config="c.Amalthea.allow_named_servers = True\n" + config,
    )
    yield h
    h.stop()


@pytest.fixture(scope="module")
def admin(hub):
    with httpx.Client(base_url=hub.api_url, headers=hub.admin_headers, timeout=30) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def make_user(admin: httpx.Client, name: str | None = None, **body) -> str:
    name = name or unique("u")
    r = admin.post(f"/users/{name}", json=body or None)
    assert r.status_code == 201, r.text
    return name


def token_for(admin: httpx.Client, user: str, scopes: list[str] | None = None) -> str:
    body = {"scopes": scopes} if scopes is not None else {}
    r = admin.post(f"/users/{user}/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def client(hub, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=hub.api_url, headers={"Authorization": f"token {token}"}, timeout=30
    )
