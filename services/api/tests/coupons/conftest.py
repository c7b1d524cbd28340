"""Real gunicorn APIs, one per claim strategy (and one whose Redis is gone), for the suite.

Each runs two workers, so claims of one coupon really race across processes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from switchyard.config import Settings
from switchyard_devtools.bench.stack import script, service
from switchyard_devtools.stack.processes import free_port

STRATEGIES = ("fast", "for_update", "conditional")
_names = itertools.count()


@dataclass(frozen=True)
class Api:
    url: str
    strategy: str
    http: httpx.Client

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = (
            raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        )
        return self.http.request(
            method,
            f"{self.url}{path}",
            content=content,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def create(self, amount: int, prefix: str = "C") -> str:
        """A new coupon with a name no other test uses."""
        name = f"{prefix}_{self.strategy}_{next(_names)}"
        response = self.call("POST", "/api/coupons", {"name": name, "amount": amount})
        assert response.status_code == 201, response.text
        return name

    def claim(self, user_id: str, coupon: str) -> int:
        return self.call(
            "POST", "/api/coupons/claim", {"user_id": user_id, "coupon_name": coupon}
        ).status_code

    def coupon(self, name: str) -> dict[str, Any]:
        response = self.call("GET", f"/api/coupons/{name}")
        assert response.status_code == 200, response.text
        return response.json()

    def claim_all(self, claims: list[tuple[str, str]], concurrency: int) -> list[int]:
        """Send every (user, coupon) claim, ``concurrency`` in flight; statuses in order."""
        statuses = [0] * len(claims)
        pending = iter(enumerate(claims))

        async def run() -> None:
            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def worker() -> None:
                    for index, (user, coupon) in pending:
                        async with session.post(
                            f"{self.url}/api/coupons/claim",
                            json={"user_id": user, "coupon_name": coupon},
                        ) as response:
                            await response.read()
                            statuses[index] = response.status

                await asyncio.gather(*(worker() for _ in range(concurrency)))

        asyncio.run(run())
        return statuses


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.fixture(scope="session")
def start_api(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Api]]:
    """Start (once per session) an API with the given COUPONS__* and extra environment."""
    logs = tmp_path_factory.mktemp("coupon-apis")
    running: dict[tuple[str, bool], Api] = {}
    with ExitStack() as stack:

        def start(strategy: str = "fast", redis_down: bool = False) -> Api:
            if (strategy, redis_down) not in running:
                port = free_port()
                env = {
                    "API__PORT": str(port),
                    "API__WORKERS": "2",
                    "API__THREADS": "32",
                    "COUPONS__STRATEGY": strategy,
                    "LOG_LEVEL": "warning",
                }
                if redis_down:
                    env["REDIS_URL"] = f"redis://127.0.0.1:{_closed_port()}/0"
                url = f"http://127.0.0.1:{port}"
                log = Path(logs) / f"api-{strategy}{'-no-redis' if redis_down else ''}.log"
                # /healthz, not /readyz: readiness rightly fails while Redis is gone.
                stack.enter_context(
                    service(
                        [script("switchyard-api"), "serve"],
                        settings,
                        env,
                        ready_url=f"{url}/healthz",
                        log=log,
                    )
                )
                http = stack.enter_context(httpx.Client(timeout=30))
                running[strategy, redis_down] = Api(url, strategy, http)
            return running[strategy, redis_down]

        yield start


@pytest.fixture(params=STRATEGIES)
def api(request: pytest.FixtureRequest, start_api: Callable[..., Api]) -> Api:
    """The API once per claim strategy: each must keep the whole contract."""
    return start_api(request.param)


@pytest.fixture
def fast_api(start_api: Callable[..., Api]) -> Api:
    return start_api("fast")


@pytest.fixture
def for_update_api(start_api: Callable[..., Api]) -> Api:
    return start_api("for_update")


@pytest.fixture
def no_redis_api(start_api: Callable[..., Api]) -> Api:
    return start_api("fast", redis_down=True)
