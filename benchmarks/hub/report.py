# ruff: noqa: RUF001, RUF002  (the table uses multiplication signs and dashes on purpose)
"""Turn the two hubs' figures into one table: figure | JupyterHub | Amalthea | ratio | target.

Ratio is always Amalthea ÷ JupyterHub, so > 1 means "more" (good for rates, bad for times,
CPU and memory). A target is either a ratio (``≥ 5×``, ``≤ 0.2×``) or an absolute bound on
Amalthea's figure (``≤ 1 s``); the cell says whether this run met it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = Callable[[float, float], bool]  # (jupyterhub, amalthea) -> met


@dataclass
class Row:
    label: str
    key: str
    fmt: str
    target: str = ""
    check: Check | None = None


def at_least_ratio(r: float) -> Check:
    return lambda jh, am: am / jh >= r


def at_most_ratio(r: float) -> Check:
    return lambda jh, am: am / jh <= r


def at_most(v: float) -> Check:
    return lambda jh, am: am <= v


def rows(small: int, big: int, spawn: tuple[int, int, int]) -> list[Row]:
    n10, n30 = spawn[1], spawn[2]
    out = [
        Row(f"create {small} users (users/s, batches of 100)", f"create_0_{small}_rate", "{:.0f}",
            "≥ 10×", at_least_ratio(10)),
        Row(f"create {small}→{big} users (users/s)", f"create_{small}_{big}_rate", "{:.0f}",
            "≥ 10×", at_least_ratio(10)),
        Row("hub CPU per created user (ms)", f"create_{small}_{big}_cpu_ms", "{:.2f}",
            "≤ 0.2×", at_most_ratio(0.2)),
    ]  # fmt: skip
    for at in (small, big):
        out += [
            Row(f"list users, limit 200 @{at} (req/s, c=10)", f"list_{at}_rate", "{:.1f}",
                "≥ 5×", at_least_ratio(5)),
            Row("… p50 / p95 (ms)", f"list_{at}_p50_ms|list_{at}_p95_ms", "{:.1f}"),
            Row("… hub CPU per request (ms)", f"list_{at}_cpu_ms", "{:.2f}", "≤ 0.2×",
                at_most_ratio(0.2)),
            Row(f"get one user @{at} (req/s, c=10)", f"get_{at}_rate", "{:.1f}", "≥ 5×",
                at_least_ratio(5)),
            Row("… p50 / p95 (ms)", f"get_{at}_p50_ms|get_{at}_p95_ms", "{:.1f}"),
            Row("… hub CPU per request (ms)", f"get_{at}_cpu_ms", "{:.2f}", "≤ 0.2×",
                at_most_ratio(0.2)),
        ]  # fmt: skip
    out += [
        Row("form logins/s (GET + POST with _xsrf, c=10)", "login_rate", "{:.1f}", "≥ 5×",
            at_least_ratio(5)),
        Row("… login p50 / p95 (ms)", "login_p50_ms|login_p95_ms", "{:.0f}"),
        Row("… hub CPU per login (ms)", "login_cpu_ms", "{:.2f}", "≤ 0.2×", at_most_ratio(0.2)),
        Row("bare single-user server start (s)", "bare_start_s", "{:.2f}"),
        Row("1 spawn: time to ready (s)", "spawn_1_s", "{:.2f}"),
        Row("hub overhead on a spawn (ready − bare start, s)", "spawn_overhead_s", "{:.2f}",
            "≤ 0.3 s", at_most(0.3)),
        Row(f"{n10} concurrent spawns: p50 / total (s)", f"spawn_{n10}_p50_s|spawn_{n10}_total_s",
            "{:.1f}"),
        Row(f"{n30} concurrent spawns: p50 / total (s)", f"spawn_{n30}_p50_s|spawn_{n30}_total_s",
            "{:.1f}"),
        Row(f"{n30} concurrent spawns: failures", f"spawn_{n30}_failures", "{:.0f}", "0",
            lambda jh, am: am == 0),
        Row("stop 1 (s)", "stop_1_s", "{:.2f}"),
        Row(f"stop {n10} / {n30} concurrent: total (s)", f"stop_{n10}_total_s|stop_{n30}_total_s",
            "{:.1f}"),
        Row("first request through the proxy (ms)", "kernel_first_request_ms", "{:.1f}"),
        Row("kernel start: POST until kernel_info_reply (ms)", "kernel_kernel_start_ms", "{:.0f}"),
        Row("kernel `1+1` round trip through the proxy p50 (ms)", "kernel_rtt_p50_ms", "{:.1f}",
            "≤ 5 ms", at_most(5)),
        Row("… p95 (ms)", "kernel_rtt_p95_ms", "{:.1f}"),
        Row("hub start, empty database (s)", "start_empty_s", "{:.2f}"),
        Row("hub stop (SIGTERM until exit, s)", "hub_stop_s", "{:.2f}"),
        Row(f"hub restart with {big} users: start → API + user GET (s)", "restart_s", "{:.2f}",
            "≤ 1 s", at_most(1)),
        Row("hub RSS after the load (MiB)", "hub_rss_load_mib", "{:.0f}", "≤ 1×",
            at_most_ratio(1)),
        Row("hub RSS after restart (MiB)", "hub_rss_restart_mib", "{:.0f}"),
        Row("proxy RSS after the load / after restart (MiB)",
            "proxy_rss_load_mib|proxy_rss_restart_mib", "{:.0f}"),
    ]  # fmt: skip
    return out


def _value(fig: dict[str, Any], key: str, fmt: str) -> tuple[str, float]:
    vals = [fig.get(k) for k in key.split("|")]
    if all(v is None for v in vals):
        return "–", math.nan
    text = " / ".join("–" if v is None or (isinstance(v, float) and math.isnan(v))
                      else fmt.format(v) for v in vals)  # fmt: skip
    first = vals[0]
    return text, float(first) if isinstance(first, int | float) else math.nan


def table(jh: dict[str, Any], am: dict[str, Any], spec: list[Row]) -> list[str]:
    lines = ["| figure | JupyterHub 6.1.1 | Amalthea | ratio (A ÷ JH) | target |",
             "| --- | ---: | ---: | ---: | --- |"]  # fmt: skip
    for row in spec:
        jt, jv = _value(jh, row.key, row.fmt)
        at, av = _value(am, row.key, row.fmt)
        ratio = f"{av / jv:.3g}×" if jv and not (math.isnan(jv) or math.isnan(av)) else "–"
        target = row.target
        if row.check and target:
            if math.isnan(av) or (math.isnan(jv) and "×" in target):
                target += " (not measured)"
            else:
                try:
                    target += " ✅ met" if row.check(jv, av) else " ❌ missed"
                except ZeroDivisionError:
                    target += " (n/a)"
        lines.append(f"| {row.label} | {jt} | {at} | {ratio} | {target} |")
    return lines


def load_table(runs: dict[str, dict[str, Any]], phases: list[str]) -> list[str]:
    names = list(runs)
    lines = ["| phase | " + " | ".join(f"load (1 min) before, {n}" for n in names) + " |",
             "| --- |" + " ---: |" * len(names)]  # fmt: skip
    for ph in phases:
        cells = [runs[n].get(f"load_{ph}") for n in names]
        lines.append(f"| {ph} | " + " | ".join("–" if c is None else f"{c:.2f}" for c in cells)
                     + " |")  # fmt: skip
    return lines
