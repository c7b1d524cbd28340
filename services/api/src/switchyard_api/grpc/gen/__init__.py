"""Generated from ``services/api/proto/switchyard/jobs/v1/jobs.proto``: do not edit.

``jobs_pb2`` (messages, typed by ``jobs_pb2.pyi``) and ``jobs_pb2_grpc`` (the client stub
``JobsStub``). ``services/api/proto/generate.py`` writes them; a test checks they match.
"""
