"""Entry point: ``switchyard-job-worker``."""

from __future__ import annotations

from switchyard.service import run_worker


def main() -> None:
    from switchyard_job_worker.service import run

    run_worker("job-worker", run, needs=("postgres", "kafka"))


if __name__ == "__main__":
    main()
