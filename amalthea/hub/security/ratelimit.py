"""Login throttling: a token bucket per client IP and per username, in memory.

Failures drain the bucket; a drained bucket makes the login page answer 429 with Retry-After
until it refills. In memory because a login storm should not become a database write storm;
a restart forgets the counters, which only ever helps the legitimate user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["LoginThrottle", "login_keys"]


def login_keys(ip: str, username: str) -> tuple[str, str]:
    """The buckets a password attempt drains: its client address and the account it names.
    Every door that checks a password (the login form, ``POST /users/NAME/tokens`` with
    ``auth``, the change-password page) uses these, so none is a side door for guessing."""
    return f"ip:{ip}", f"user:{username[:300].strip().lower()}"


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class LoginThrottle:
    def __init__(self, burst: int = 10, per_minute: float = 10.0, max_keys: int = 100_000) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()  # crude but bounded: never grow without limit
            b = self._buckets[key] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        return b

    def retry_after(self, *keys: str) -> float:
        """Seconds to wait before another attempt is allowed (0 = go ahead)."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            b = self._bucket(key, now)
            if b.tokens < 1:
                wait = max(wait, (1 - b.tokens) / self.rate)
        return wait

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._bucket(key, now).tokens -= 1

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._buckets.pop(key, None)
