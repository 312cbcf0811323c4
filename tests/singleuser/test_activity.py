"""Activity computation and reporting (amalthea.singleuser.activity), without a server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from amalthea.singleuser.activity import ActivityReporter, isoformat, server_last_activity
from amalthea.singleuser.hubclient import HubUnavailable

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


class Kernels:
    def __init__(self, **states: str) -> None:
        self.states = states

    def list_kernel_ids(self) -> list[str]:
        return [*self.states, "gone"]

    def get_kernel(self, kid: str) -> SimpleNamespace:
        if kid == "gone":
            raise KeyError(kid)  # shut down between listing and lookup
        return SimpleNamespace(execution_state=self.states[kid])


def recorded() -> datetime:
    return LONG_AGO


@pytest.mark.parametrize(
    ("settings", "live"),
    [
        ({}, False),
        ({"kernel_manager": Kernels(a="idle", b="starting")}, False),
        ({"kernel_manager": Kernels(a="idle", b="busy")}, True),
        (
            {"terminal_manager": SimpleNamespace(terminals={"1": SimpleNamespace(clients=[])})},
            False,
        ),
        (
            {"terminal_manager": SimpleNamespace(terminals={"1": SimpleNamespace(clients=[1])})},
            True,
        ),
    ],
)
def test_busy_kernels_and_attached_terminals_are_activity_now(
    settings: dict[str, Any], live: bool
) -> None:
    ts = server_last_activity(settings, recorded)
    if live:
        assert datetime.now(UTC) - ts < timedelta(seconds=5)
    else:
        assert ts == LONG_AGO


def test_isoformat_is_utc_with_z() -> None:
    ts = datetime(2026, 11, 25, 23, 8, 42, 72188, tzinfo=UTC)
    assert isoformat(ts) == "2026-11-25T23:08:42.072188Z"
    assert isoformat(ts.astimezone(timezone(timedelta(hours=2)))) == ("2026-11-25T23:08:42.072188Z")


class FlakyClient:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[str, dict[str, Any]]] = []

    async def post_json(self, url: str, payload: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise HubUnavailable("hub restarting")
        self.posts.append((url, payload))


def reporter(client: Any, clock: Callable[[], datetime]) -> ActivityReporter:
    return ActivityReporter(
        client,
        activity_url="http://hub/api/users/alice/activity",
        server_name="gpu",
        interval=1,
        last_activity=clock,
        retry_budget=5,
    )


async def test_reports_only_new_activity_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr("amalthea.singleuser.activity.asyncio.sleep", fake_sleep)
    now = [LONG_AGO]
    client = FlakyClient(failures=2)
    rep = reporter(client, lambda: now[0])
    assert await rep.report_once() is True
    assert sleeps == [1.0, 2.0]  # backoff after two failures
    url, payload = client.posts[0]
    assert url.endswith("/users/alice/activity")
    assert payload == {
        "last_activity": "2020-01-01T00:00:00Z",
        "servers": {"gpu": {"last_activity": "2020-01-01T00:00:00Z"}},
    }
    assert await rep.report_once() is False  # nothing new
    now[0] = LONG_AGO + timedelta(seconds=1)
    assert await rep.report_once() is True and len(client.posts) == 2


async def test_gives_up_after_the_retry_budget() -> None:
    rep = reporter(FlakyClient(failures=100), recorded)
    rep.retry_budget = 0.5
    with pytest.raises(HubUnavailable):
        await rep.report_once()
    assert rep.last_reported is None  # will try again next interval
