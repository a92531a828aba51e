"""The Open Inference Protocol v2 gRPC servicer: a thin adapter over the data plane.

Each handler decodes the request, calls :class:`~inference.dataplane.DataPlane` and
encodes the answer; errors become gRPC status codes (INVALID_ARGUMENT for a malformed
request, NOT_FOUND for another model or version, UNAVAILABLE while shutting down or
unloaded, FAILED_PRECONDITION for a refused load, ABORTED for a load while another runs,
INTERNAL for anything unexpected). The model repository extension's calls go to
:class:`~inference.rollout.Rollout`. Every call is counted and timed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TypeVar

import grpc

from inference.batcher import BatcherClosedError
from inference.dataplane import (
    DataPlane,
    ExplanationsBusyError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from inference.metrics import Metrics
from inference.rollout import LoadBusyError, LoadError, Rollout
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from proto.codec import (
    DEFAULT_OUTPUTS,
    CodecError,
    decode_inputs,
    encode_outputs,
    requested_outputs,
)

log = logging.getLogger(__name__)

SERVER_NAME = "scoring-service-inference"
REPOSITORY_EXTENSION = "model_repository"

T = TypeVar("T")


def _server_version() -> str:
    try:
        return metadata.version("scoring-service")
    except metadata.PackageNotFoundError:
        return "unknown"


_STATUS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], grpc.StatusCode], ...] = (
    (CodecError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    ((BatcherClosedError, ModelUnavailableError), grpc.StatusCode.UNAVAILABLE),
    (ExplanationsBusyError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LoadBusyError, grpc.StatusCode.ABORTED),  # before LoadError, its base
    (LoadError, grpc.StatusCode.FAILED_PRECONDITION),
)


def _status(error: Exception) -> grpc.StatusCode:
    """The gRPC status code for an error raised while handling a call."""
    for kinds, code in _STATUS:
        if isinstance(error, kinds):
            return code
    return grpc.StatusCode.INTERNAL


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` over one :class:`DataPlane`."""

    def __init__(
        self, plane: DataPlane, metrics: Metrics | None = None, rollout: Rollout | None = None
    ) -> None:
        self._plane = plane
        self._metrics = metrics
        self._rollout = rollout if rollout is not None else Rollout(plane, None)
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
        """Server name and version; the model repository extension when it has a repository."""
        extensions = [REPOSITORY_EXTENSION] if self._rollout.repository is not None else []
        return self._call(
            "ServerMetadata",
            context,
            lambda: pb.ServerMetadataResponse(
                name=SERVER_NAME, version=self._version, extensions=extensions
            ),
        )

    def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """The model's inputs, outputs, missing-value texts and contributions' names."""
        return self._call(
            "ModelMetadata",
            context,
            lambda: self._plane.get_model(request.name, request.version).to_metadata(),
        )

    def ModelInfer(  # noqa: N802
        self, request: pb.ModelInferRequest, context: grpc.ServicerContext
    ) -> pb.ModelInferResponse:
        """Decode the input tensors, score them (batched with concurrent calls), encode."""

        def handle() -> pb.ModelInferResponse:
            plane = self._plane
            plane.get_model(request.model_name, request.model_version)  # before decoding
            columns, n_rows = decode_inputs(request, plane.input_specs, plane.limits)
            names = requested_outputs(request, plane.output_names, DEFAULT_OUTPUTS)
            answer = plane.infer(
                columns, n_rows, names, name=request.model_name, version=request.model_version
            )
            model, values = answer.model, answer.outputs
            specs = {spec.name: spec for spec in model.outputs}
            response = pb.ModelInferResponse(
                model_name=model.name, model_version=model.version, id=request.id
            )
            encode_outputs(response, ((specs[name], values[name]) for name in names))
            return response

        return self._call("ModelInfer", context, handle)

    def RepositoryIndex(  # noqa: N802
        self, request: pb.RepositoryIndexRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        """The versions in the model repository, each READY, UNAVAILABLE (and why) or LOADING."""

        def handle() -> pb.RepositoryIndexResponse:
            response = pb.RepositoryIndexResponse()
            for state in self._rollout.index(ready_only=request.ready):
                response.models.add(
                    name=state.name, version=state.version, state=state.state, reason=state.reason
                )
            return response

        return self._call("RepositoryIndex", context, handle)

    def RepositoryModelLoad(  # noqa: N802
        self, request: pb.RepositoryModelLoadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        """Load a version (``version`` parameter, else the latest), verify it, swap it in."""

        def handle() -> pb.RepositoryModelLoadResponse:
            version = requested_version(request.parameters)
            self._rollout.load(request.model_name, version)
            return pb.RepositoryModelLoadResponse()

        return self._call("RepositoryModelLoad", context, handle)

    def RepositoryModelUnload(  # noqa: N802
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        """Stop serving the model once the calls in flight have finished."""

        def handle() -> pb.RepositoryModelUnloadResponse:
            self._rollout.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return self._call("RepositoryModelUnload", context, handle)


def requested_version(parameters: Mapping[str, pb.ModelRepositoryParameter]) -> str:
    """The version a load names: ``version`` (string or integer), or tritonclient's ``config``.

    ``config`` is Triton's model configuration as JSON; only its version policy is read
    (``{"version_policy": {"specific": {"versions": [N]}}}``). Neither: "" (the latest).

    Raises:
        CodecError: a ``config`` that is not such JSON.

    """
    if "version" in parameters:
        parameter = parameters["version"]
        if parameter.WhichOneof("parameter_choice") == "int64_param":
            return str(parameter.int64_param)
        return parameter.string_param
    if "config" not in parameters:
        return ""
    try:
        config = json.loads(parameters["config"].string_param or "{}")
        versions = config.get("version_policy", {}).get("specific", {}).get("versions", [])
    except (ValueError, AttributeError) as error:
        raise CodecError(f"load config is not a JSON model configuration: {error}") from None
    if not isinstance(versions, list) or len(versions) > 1:
        raise CodecError("load config must name at most one version in version_policy.specific")
    return str(versions[0]) if versions else ""
