"""REST gateway: JSON rows on port 5001 -> Open Inference Protocol v2 gRPC -> JSON answers.

The gateway knows only the wire contract (``proto``), never the model code: the model's
inputs come from the inference server's ModelMetadata.
"""
