"""Entry point: `switchyard-job-worker`."""

from __future__ import annotations

from switchyard.service import idle_until_stopped, run_worker


def main() -> None:
    # No work of its own yet: it starts, reports its dependencies, and stops cleanly.
    run_worker("job-worker", idle_until_stopped)


if __name__ == "__main__":
    main()
