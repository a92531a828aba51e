"""gRPC inference server: one model bundle behind the Open Inference Protocol v2.

Layers, outermost first: :mod:`inference.server` (process, gRPC server, health,
reflection, signals), :mod:`inference.servicer` (thin OIP v2 servicer over :mod:`proto.codec`),
:mod:`inference.dataplane`
(transport-free: model metadata, readiness, scoring through
:mod:`inference.batcher`), with :mod:`inference.metrics` alongside.
"""
