"""The flash-sale bench's Markdown: side-by-side rounds, their ratios, then the baselines.

Every ratio is taken between measurements of the same round (neighbours in time on the
same machine), never across runs; each row says the 1-minute load average it started at.
"""

from __future__ import annotations

import statistics
from typing import Any

from switchyard_devtools.load.generator import LoadResult

HEALTHZ = "GET /healthz"
OURS = "fast"
MINIMUM = "minimum"
TARGET_RATE = 2_000
TARGET_SHARE_OF_HEALTHZ = 0.9


def _rate(row: dict[str, Any]) -> float:
    result: LoadResult = row["result"]
    return result.requests / result.elapsed


def _latencies(result: LoadResult) -> str:
    return " | ".join(f"{result.percentile(q) * 1000:.1f}" for q in (50, 95, 99))


def _statuses(row: dict[str, Any]) -> str:
    statuses = row["result"].statuses
    if row["strategy"] == HEALTHZ:
        return f"{statuses[200]} x 200"
    others = sum(n for s, n in statuses.items() if s not in (200, 400, 409))
    text = f"{statuses[200]} / {statuses[409]} / {statuses[400]}"
    return text + (f" (+{others} other)" if others else "")


def _coupon(row: dict[str, Any]) -> str:
    coupon = row.get("coupon")
    if coupon is None:
        return "| "
    return f"{coupon['remaining_amount']} | {len(coupon['claimed_by'])}"


def _row(row: dict[str, Any], prefix: str) -> str:
    check = "ok" if not row["problems"] else "; ".join(row["problems"])
    return (
        f"| {prefix}{row['strategy']} | {_rate(row):,.0f} | {_latencies(row['result'])} "
        f"| {_statuses(row)} | {_coupon(row)} | {check} | {row['load']:.1f} |"
    )


_HEADER = [
    "| {first}what | req/s | p50 ms | p95 ms | p99 ms | 200 / 409 / 400 | remaining "
    "| claimed_by | check | load1 |",
    "| {dashes}--- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |",
]


def _ratios(rows: list[dict[str, Any]]) -> tuple[list[str], list[float], list[float]]:
    lines = [
        "| round | scenario | ours claims/s | minimum claims/s | GET /healthz req/s "
        "| ours / minimum | ours / healthz |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    hot_shares, hot_rates = [], []
    keys = sorted({(r["round"], r["scenario"].name) for r in rows}, key=lambda k: k[0])
    for round_, scenario in keys:
        same = {
            r["strategy"]: r
            for r in rows
            if r["round"] == round_ and r["scenario"].name == scenario
        }
        ours, minimum, healthz = (_rate(same[k]) for k in (OURS, MINIMUM, HEALTHZ))
        if scenario == "hot":
            hot_shares.append(ours / healthz)
            hot_rates.append(ours)
        lines.append(
            f"| {round_} | {scenario} | {ours:,.0f} | {minimum:,.0f} | {healthz:,.0f} "
            f"| {ours / minimum:.0%} | {ours / healthz:.0%} |"
        )
    return lines, hot_shares, hot_rates


def report(rows: list[dict[str, Any]]) -> str:
    side = [r for r in rows if "round" in r]
    baselines = [r for r in rows if "round" not in r]
    ratio_lines, shares, rates = _ratios(side)
    share, rate = statistics.median(shares), statistics.median(rates)
    scenarios = list(dict.fromkeys(r["scenario"] for r in side))
    lines = [
        "## Flash sale: one hot coupon",
        "",
        "100 concurrent clients (asyncio/aiohttp, on the same machine) against 2 gunicorn "
        "workers of 64 threads each. Side by side, both servers up and measured in turn each "
        "round: ours (`COUPONS__STRATEGY=fast`: the gate of committed facts, then per-coupon "
        "group commit through `claim_coupon_batch()`), the minimum (a bare Flask app under "
        "the same gunicorn settings: one lock-free read answers what committed facts decide, "
        "else `claim_coupon_batch()` with one claim; see "
        "`switchyard_devtools/bench/coupon_minimum.py`) and our `GET /healthz`. claims/s "
        "counts every answered claim (200, 409 and 400 alike); latencies are per request.",
        "",
        *(f"* `{s.name}`: {s.what}." for s in scenarios),
        "",
        f"**Hot coupon, median of {len(shares)} rounds: ours {rate:,.0f} claims/s "
        f"(target ≥ {TARGET_RATE:,}: {'met' if rate >= TARGET_RATE else 'missed'}), "
        f"{share:.0%} of `GET /healthz` in the same round (target ≥ "
        f"{TARGET_SHARE_OF_HEALTHZ:.0%}: "
        f"{'met' if share >= TARGET_SHARE_OF_HEALTHZ else 'missed'}).**",
        "",
        *ratio_lines,
        "",
        *(h.format(first="round | scenario | ", dashes="---: | --- | ") for h in _HEADER),
    ]
    lines += [_row(r, f"{r['round']} | {r['scenario'].name} | ") for r in side]
    if baselines:
        lines += [
            "",
            "### The plain PostgreSQL strategies (one API each, after the rounds above)",
            "",
            "`for_update`: a transaction per claim behind `SELECT ... FOR UPDATE`; "
            "`conditional`: insert the claim, then `UPDATE ... WHERE remaining_amount > 0`.",
            "",
            *(h.format(first="scenario | ", dashes="--- | ") for h in _HEADER),
            *(_row(r, f"{r['scenario'].name} | ") for r in baselines),
            "",
            _speedups(side, baselines),
        ]
    return "\n".join(lines)


def _speedups(side: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> str:
    parts = []
    for baseline in (r for r in baselines if r["strategy"] == "for_update"):
        ours = next(
            r
            for r in side
            if r["strategy"] == OURS and r["scenario"] is baseline["scenario"] and r["round"] == 1
        )
        parts.append(f"`{baseline['scenario'].name}` {_rate(ours) / _rate(baseline):.1f}x")
    return f"`fast` (round 1) over the `for_update` baseline, claims/s: {', '.join(parts)}."
