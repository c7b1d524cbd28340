"""Entry point: `switchyard-health-checker`."""

from __future__ import annotations

from switchyard.service import run_worker


def main() -> None:
    from switchyard_health_checker.service import run

    run_worker("health-checker", run, needs=("postgres", "kafka"))


if __name__ == "__main__":
    main()
