"""Entry point: `switchyard-health-checker`."""

from __future__ import annotations

from switchyard.service import idle_until_stopped, run_worker


def main() -> None:
    # No work of its own yet: it starts, reports its dependencies, and stops cleanly.
    run_worker("health-checker", idle_until_stopped)


if __name__ == "__main__":
    main()
