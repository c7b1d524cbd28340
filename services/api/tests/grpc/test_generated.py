"""The committed generated modules are what the generator makes from the committed .proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).resolve().parents[2] / "proto" / "generate.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("switchyard_proto_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_gives_the_committed_files() -> None:
    generator = _generator()
    generated = generator.generate()
    assert set(generated) == {"jobs_pb2.py", "jobs_pb2.pyi", "jobs_pb2_grpc.py"}
    for name, text in generated.items():
        committed = (generator.TARGET / name).read_text()
        assert committed == text, f"{name} is stale: run `{generator.COMMAND}`"
    assert generator.main(["--check"]) == 0


def test_the_stub_imports_the_messages_from_this_package() -> None:
    from switchyard_api.grpc.gen import jobs_pb2, jobs_pb2_grpc

    assert jobs_pb2_grpc.switchyard_dot_jobs_dot_v1_dot_jobs__pb2 is jobs_pb2
    assert jobs_pb2.DESCRIPTOR.package == "switchyard.jobs.v1"
    assert jobs_pb2.DESCRIPTOR.name == "switchyard/jobs/v1/jobs.proto"
