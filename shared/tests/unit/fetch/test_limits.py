from __future__ import annotations

import asyncio

from switchyard.fetch.limits import ConcurrencyLimits


def test_per_host_and_total_limits_hold_and_hosts_are_forgotten() -> None:
    async def scenario() -> None:
        limits = ConcurrencyLimits(total=3, per_host=2)
        running: dict[str, int] = {"a": 0, "b": 0, "c": 0}
        peak = {"all": 0, "a": 0}

        async def use(host: str) -> None:
            async with limits.slot(host):
                running[host] += 1
                peak["all"] = max(peak["all"], sum(running.values()))
                peak["a"] = max(peak["a"], running["a"])
                await asyncio.sleep(0.01)
                running[host] -= 1

        async with asyncio.timeout(5):
            await asyncio.gather(*(use(h) for h in "aaaaaabbbcc"))
        assert peak == {"all": 3, "a": 2}
        assert limits.hosts_in_use() == 0

    asyncio.run(scenario())
