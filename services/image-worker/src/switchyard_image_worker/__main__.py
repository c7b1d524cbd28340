"""Entry point: ``switchyard-image-worker``."""

from __future__ import annotations

from switchyard.service import run_worker


def main() -> None:
    from switchyard_image_worker.service import run

    run_worker("image-worker", run, needs=("postgres", "kafka"))


if __name__ == "__main__":
    main()
