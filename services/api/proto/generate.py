"""Regenerate the committed gRPC modules of ``switchyard_api.grpc.gen`` from the .proto.

    uv run python services/api/proto/generate.py          # write them
    uv run python services/api/proto/generate.py --check  # exit 1 if they differ

Guarantee: the committed modules are exactly what this produces from the committed
.proto with the locked grpcio-tools (``services/api/tests/grpc/test_generated.py`` runs
the check), so the two never drift.

Why commit generated code instead of generating it in the image build: the service
Dockerfile copies only ``services/<service>/src`` and installs no dev tool, so a build-time
step would need the .proto and grpcio-tools (a compiler, 60 MB) in every image build;
committed modules keep the image as written, keep ``grpcio-tools`` in the dev group, and
let readers (and mypy, through the ``.pyi``) see the messages.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = Path("switchyard/jobs/v1/jobs.proto")
TARGET = HERE.parent / "src/switchyard_api/grpc/gen"
PACKAGE = "switchyard_api.grpc.gen"
HEADER = "# Generated from services/api/proto/{proto}; regenerate with\n# {command}\n"
COMMAND = "uv run python services/api/proto/generate.py"


def generate() -> dict[str, str]:
    """File name → content of every generated module."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as raw:
        out = Path(raw)
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{HERE}",
                f"-I{well_known}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                str(PROTO),
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed ({status})")
        produced = out / PROTO.parent
        files = {path.name: path.read_text() for path in sorted(produced.glob("*.py*"))}
    # protoc writes `from switchyard.jobs.v1 import jobs_pb2`, the .proto's package path;
    # here that would be the `switchyard` library: import from where the module really is.
    stem = PROTO.stem
    dotted = ".".join(PROTO.parent.parts)
    header = HEADER.format(proto=PROTO, command=COMMAND)
    return {
        name: header
        + text.replace(f"from {dotted} import {stem}_pb2", f"from {PACKAGE} import {stem}_pb2")
        for name, text in files.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in generate().items():
        path = TARGET / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run `{COMMAND}`", file=sys.stderr)
        return 1
    print(f"{'stale' if args.check else 'written'}: {', '.join(stale) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
