"""Entry point: ``switchyard-batcher``."""

from __future__ import annotations

from switchyard.service import run_worker


def main() -> None:
    from switchyard_batcher.service import run

    run_worker("batcher", run, needs=("postgres", "kafka"))


if __name__ == "__main__":
    main()
