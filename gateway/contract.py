"""The REST contract as typed models: what the gateway answers, and the OpenAPI schemas.

Every answer and error body the gateway sends is one of these structs (``/predict``'s
rows are still built as dicts of the same shape), encoded by :func:`encode`;
``gateway.openapi`` derives ``/openapi.json``'s component schemas from the same structs
(:func:`schemas`), so the document cannot drift from the answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Probability = Annotated[
    float, Meta(ge=0, le=1, description="P(y = 1), the probability of the positive class.")
]
ClassLabel = Annotated[
    Literal[0, 1], Meta(description="1 when probability reaches the model's threshold.")
]
OutputName = Literal["probability", "class", "logit", "base_logit", "contributions"]
"""The outputs the served model can answer (``gateway.oip_rest.OUTPUT_DATATYPES``)."""


class Prediction(Struct):
    """The score of one row."""

    class_: ClassLabel = msgspec.field(name="class")
    probability: Probability


class Contribution(Struct):
    """One input's (or group's) share of a row's logit."""

    feature: Annotated[str, Meta(description="An input column, or a group of them.")]
    contribution: Annotated[float, Meta(description="Its share of the row's logit.")]
    columns: (
        Annotated[
            list[str],
            Meta(description="For a group (a feature read from several columns): those columns."),
        ]
        | UnsetType
    ) = UNSET


class Explanation(Struct):
    """The score of one row and its logit split over the inputs."""

    class_: ClassLabel = msgspec.field(name="class")
    probability: Probability
    logit: Annotated[float, Meta(description="log(p / (1 - p)).")]
    base_logit: Annotated[float, Meta(description="What no input explains.")]
    contributions: list[Contribution]
    other: Annotated[float, Meta(description="The sum of the contributions not listed.")]


class Detail(Struct):
    """One problem of a request: the ``row`` (0-based) and ``field`` it is in, when known."""

    row: int | None
    field: str | None
    value: Any
    reason: str


class Error(Struct):
    """Every error answer: what went wrong, and each problem found (up to a cap)."""

    error: str
    details: list[Detail]


class Health(Struct):
    """The gateway process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(Struct):
    """The model is reachable and ready, and which one it is."""

    model: str
    version: str
    status: Literal["ready"] = "ready"


class TensorMetadata(Struct):
    """A tensor's name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(Struct):
    """The served model's inputs and outputs (Open Inference Protocol)."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(Struct):
    """The server's name and version (Open Inference Protocol)."""

    name: str
    version: str
    extensions: list[str]


class Live(Struct):
    """Liveness (Open Inference Protocol)."""

    live: bool


class Ready(Struct):
    """Readiness (Open Inference Protocol)."""

    ready: bool


class ModelReady(Struct):
    """A model's readiness (Open Inference Protocol)."""

    name: str
    ready: bool


class InputTensor(Struct):
    """One input of an infer request: JSON ``data``, or binary data sized in ``parameters``."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET


class RequestedOutput(Struct):
    """An output an infer request asks for."""

    name: OutputName
    parameters: dict[str, Any] | UnsetType = UNSET


class InferRequest(Struct):
    """An infer request (Open Inference Protocol REST); documented, decoded by ``oip_rest``."""

    inputs: Annotated[list[InputTensor], Meta(min_length=1)]
    id: str | UnsetType = UNSET
    outputs: list[RequestedOutput] | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET


class OutputTensor(Struct):
    """One output of an infer answer, its values flattened in row-major order."""

    name: str
    datatype: str
    shape: list[int]
    data: list[float]


class InferResponse(Struct):
    """An infer answer (Open Inference Protocol REST)."""

    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    id: str | UnsetType = UNSET


COMPONENTS: tuple[type[Struct], ...] = (
    Prediction,
    Explanation,
    Error,
    Health,
    Readiness,
    ServerMetadata,
    Live,
    Ready,
    ModelMetadata,
    ModelReady,
    InferRequest,
    InferResponse,
)
"""The structs ``/openapi.json`` names (the structs they hold are named too)."""
REF_TEMPLATE = "#/components/schemas/{name}"

_encoder = msgspec.json.Encoder()


def encode(answer: Any) -> bytes:
    """An answer (structs, lists, dicts and JSON scalars) as JSON bytes."""
    return _encoder.encode(answer)


def schemas() -> dict[str, Any]:
    """The JSON schemas of :data:`COMPONENTS` and every struct they hold, by name."""
    _, components = msgspec.json.schema_components(COMPONENTS, ref_template=REF_TEMPLATE)
    return components
