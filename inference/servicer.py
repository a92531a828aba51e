"""The Open Inference Protocol v2 gRPC servicer: a thin adapter over the data plane.

Each handler decodes the request, calls :class:`~inference.dataplane.DataPlane` and
encodes the answer; errors become gRPC status codes (INVALID_ARGUMENT for a malformed
request, NOT_FOUND for another model, UNAVAILABLE while shutting down, INTERNAL for
anything unexpected). Every call is counted and timed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import metadata
from typing import TypeVar

import grpc

from inference.batcher import BatcherClosedError
from inference.dataplane import DataPlane, ExplanationsBusyError, ModelNotFoundError
from inference.metrics import Metrics
from inference.tensors import decode_inputs, encode_outputs, requested_outputs
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from proto.codec import (
    CONTRIBUTION_GROUPS,
    CONTRIBUTION_NAMES,
    DEFAULT_OUTPUTS,
    MISSING_TEXT,
    CodecError,
    encode_contribution_names,
    encode_texts,
)

log = logging.getLogger(__name__)

SERVER_NAME = "scoring-service-inference"

T = TypeVar("T")


def _server_version() -> str:
    try:
        return metadata.version("scoring-service")
    except metadata.PackageNotFoundError:
        return "unknown"


def _status(error: Exception) -> grpc.StatusCode:
    """The gRPC status code for an error raised while handling a call."""
    if isinstance(error, CodecError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, ModelNotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, BatcherClosedError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, ExplanationsBusyError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.INTERNAL


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` over one :class:`DataPlane`."""

    def __init__(self, plane: DataPlane, metrics: Metrics | None = None) -> None:
        self._plane = plane
        self._metrics = metrics
        self._version = _server_version()

    def _call(self, method: str, context: grpc.ServicerContext, handler: Callable[[], T]) -> T:
        """Run ``handler``; map its errors to a status, record metrics; abort on error."""
        started = time.perf_counter()
        try:
            result = handler()
        except Exception as error:
            code = _status(error)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("%s failed", method)
                message = f"internal error: {type(error).__name__}: {error}"
            else:
                message = str(error)
            self._record(method, code, started)
            context.abort(code, message)  # raises
            raise
        self._record(method, grpc.StatusCode.OK, started)
        return result

    def _record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_request(method, code.name, time.perf_counter() - started)

    def ServerLive(  # noqa: N802 - gRPC method names
        self, _request: pb.ServerLiveRequest, context: grpc.ServicerContext
    ) -> pb.ServerLiveResponse:
        """The process answers, so it is live."""
        return self._call("ServerLive", context, lambda: pb.ServerLiveResponse(live=True))

    def ServerReady(  # noqa: N802
        self, _request: pb.ServerReadyRequest, context: grpc.ServicerContext
    ) -> pb.ServerReadyResponse:
        """Ready once the model is warmed, until shutdown begins."""
        return self._call(
            "ServerReady", context, lambda: pb.ServerReadyResponse(ready=self._plane.ready)
        )

    def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: grpc.ServicerContext
    ) -> pb.ModelReadyResponse:
        """Whether the named model (and version) is served here and ready."""
        return self._call(
            "ModelReady",
            context,
            lambda: pb.ModelReadyResponse(
                ready=self._plane.model_ready(request.name, request.version)
            ),
        )

    def ServerMetadata(  # noqa: N802
        self, _request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """Server name and version; no optional protocol extensions."""
        return self._call(
            "ServerMetadata",
            context,
            lambda: pb.ServerMetadataResponse(name=SERVER_NAME, version=self._version),
        )

    def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """The model's inputs, outputs, missing-value texts and contributions' names."""

        def handle() -> pb.ModelMetadataResponse:
            model = self._plane.get_model(request.name, request.version)
            response = pb.ModelMetadataResponse(
                name=model.name, versions=[model.version], platform=model.platform
            )
            for field, specs in (
                (response.inputs, model.inputs),
                (response.outputs, model.outputs),
            ):
                for spec in specs:
                    field.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
            parameters = response.parameters
            parameters[MISSING_TEXT].string_param = encode_texts(model.missing_text)
            names, groups = encode_contribution_names(
                model.contribution_names, model.contribution_groups
            )
            parameters[CONTRIBUTION_NAMES].string_param = names
            parameters[CONTRIBUTION_GROUPS].string_param = groups
            return response

        return self._call("ModelMetadata", context, handle)

    def ModelInfer(  # noqa: N802
        self, request: pb.ModelInferRequest, context: grpc.ServicerContext
    ) -> pb.ModelInferResponse:
        """Decode the input tensors, score them (batched with concurrent calls), encode."""

        def handle() -> pb.ModelInferResponse:
            plane = self._plane
            model = plane.get_model(request.model_name, request.model_version)
            columns, n_rows = decode_inputs(request, plane.input_specs, plane.limits)
            names = requested_outputs(request, plane.output_names, DEFAULT_OUTPUTS)
            values = plane.infer(columns, n_rows, names)
            specs = {spec.name: spec for spec in model.outputs}
            response = pb.ModelInferResponse(
                model_name=model.name, model_version=model.version, id=request.id
            )
            encode_outputs(response, ((specs[name], values[name]) for name in names))
            return response

        return self._call("ModelInfer", context, handle)
