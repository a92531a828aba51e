"""The wire contract: Open Inference Protocol v2 (gRPC) and its generated Python stubs.

``inference.proto`` is the source; ``inference_pb2*.py(i)`` are generated from it by
``python -m proto.generate`` and committed (CI runs ``python -m proto.generate --check``).

The generated messages live in their own descriptor pool (``inference_pb2.POOL``), not in
protobuf's default pool, so this module can be imported next to ``tritonclient.grpc``,
which registers the same ``inference.*`` message names in the default pool.
"""
