"""The REST contract as an OpenAPI 3.1 document (static; served at ``/openapi.json``).

The paths and their words are written here; every answer's and error's schema is
generated from the structs of :mod:`gateway.contract` that the app encodes.
"""

from __future__ import annotations

from typing import Any

from gateway.contract import schemas

API_VERSION = "1.0.0"

_EXAMPLE_ROW = {
    "x0": "9.521496806",
    "x1": "wed",
    "x2": "-5.087588682",
    "x12": "$296.43 ",
    "x54": "Jun",
    "x79": "0.01%",
    "x82": "asia",
    "x84": "Toyota",
    "x99": "-1.926577376",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = _ref("Error")


def _error_response(description: str, retry_after: bool = False) -> dict[str, Any]:
    """Build one documented error response."""
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "string"},
            }
        }
    return response


_ROWS_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    _ref("Row"),
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": _ref("Row"),
                    },
                ]
            },
            "examples": {
                "one row": {"value": _EXAMPLE_ROW},
                "a batch": {"value": [_EXAMPLE_ROW, _EXAMPLE_ROW]},
            },
        }
    },
}
_UNAUTHORIZED = _error_response(
    "Missing or invalid API key (only when keys are on): send 'Authorization: Bearer <key>' "
    "or 'X-API-Key: <key>'. Answered with WWW-Authenticate, before the body is read."
)
_ROWS_ERRORS: dict[str, Any] = {
    "401": _UNAUTHORIZED,
    "400": _error_response(
        "Malformed JSON, wrong shape, empty array, a row that is not an object or holds no "
        "input field, or invalid values (every one listed, up to a cap)."
    ),
    "413": _error_response("Body or row count over the configured limit."),
    "415": _error_response("Content type is not application/json."),
    "502": _error_response("The inference server answered something unusable."),
    "503": _error_response("The inference server is unavailable or busy.", retry_after=True),
    "504": _error_response("The inference server missed the deadline.", retry_after=True),
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The served model's name (GET /v2/models/{name} of another name is 404).",
    "schema": {"type": "string"},
}


def _json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _oip_get(operation: str, summary: str, schema: dict[str, Any], model: bool) -> dict[str, Any]:
    """One GET route of the Open Inference Protocol's REST API."""
    responses: dict[str, Any] = {"200": _json_answer(summary + ".", schema), "401": _UNAUTHORIZED}
    if model or operation.endswith("ready"):
        responses["503"] = _error_response("The model is unavailable.", retry_after=True)
        responses["504"] = _error_response("The inference server missed the deadline.", True)
    if model:
        responses["404"] = _error_response("No model of that name is served here.")
    get: dict[str, Any] = {"operationId": operation, "summary": summary, "responses": responses}
    if model:
        get["parameters"] = [_NAME]
    return {"get": get}


_OIP_PATHS: dict[str, Any] = {
    "/v2": _oip_get(
        "oipServer", "Server metadata (Open Inference Protocol)", _ref("ServerMetadata"), False
    ),
    "/v2/health/live": _oip_get(
        "oipLive", "Liveness (Open Inference Protocol)", _ref("Live"), False
    ),
    "/v2/health/ready": _oip_get(
        "oipReady", "Readiness (Open Inference Protocol)", _ref("Ready"), False
    ),
    "/v2/models/{name}": _oip_get(
        "oipModelMetadata",
        "The model's inputs and outputs (Open Inference Protocol)",
        _ref("ModelMetadata"),
        True,
    ),
    "/v2/models/{name}/ready": _oip_get(
        "oipModelReady", "Model readiness (Open Inference Protocol)", _ref("ModelReady"), True
    ),
    "/v2/models/{name}/infer": {
        "post": {
            "operationId": "oipInfer",
            "summary": "Score or explain tensors (Open Inference Protocol REST)",
            "description": (
                "One input tensor per model input (GET /v2/models/{name} lists them), shape "
                "[N] or [N, 1], JSON data or the binary tensor extension "
                "(Inference-Header-Content-Length). Outputs probability and class by "
                "default; naming logit, base_logit or contributions in 'outputs' explains "
                "the rows. The same limits, errors and keys as /predict."
            ),
            "parameters": [_NAME],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("InferRequest")}},
            },
            "responses": {
                "200": _json_answer(
                    "The requested outputs as JSON tensors.",
                    _ref("InferResponse"),
                ),
                **_ROWS_ERRORS,
                "400": _error_response(
                    "Malformed JSON, inputs that do not match the model's (missing, unknown, "
                    "wrong datatype or shape, different row counts), an unknown output, or "
                    "invalid values (every one listed, up to a cap)."
                ),
                "404": _error_response("No model of that name is served here."),
                "501": _error_response("The inference server does not explain its scores."),
            },
        }
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Exercise 06 scoring API",
        "version": API_VERSION,
        "description": (
            "Scores rows of the exercise 06 data. Send one row (an object) or an array of "
            "1..N rows; the answer is always an array in the same order. Each row maps "
            "column names (x0..x99) to values: JSON numbers or strings (numeric strings "
            'such as "105.79463270000001" included); null, an absent key, "" or "nan" '
            "mean missing. Keys that are not model inputs are ignored; a row holding none "
            "of the inputs is rejected. Text columns (x1, x12, x54, x79, x82, x84) accept "
            "any spelling: unknown categories are scored as unknown, never rejected."
        ),
    },
    "paths": {
        "/predict": {
            "post": {
                "operationId": "predict",
                "summary": "Score 1..N rows",
                "requestBody": _ROWS_BODY,
                "responses": {
                    "200": {
                        "description": "One prediction per row, in input order.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": _ref("Prediction"),
                                },
                                "example": [{"class": 0, "probability": 0.1234}],
                            }
                        },
                    },
                    **_ROWS_ERRORS,
                },
            }
        },
        "/explain": {
            "post": {
                "operationId": "explain",
                "summary": "Score 1..N rows and split each row's logit over its inputs",
                "description": (
                    "The same body and limits as /predict. Each answer adds the model's logit "
                    "(log-odds), the base logit no input explains, and the contributions of "
                    "the inputs to the logit, largest in magnitude first: exact tree SHAP "
                    "values for the boosted learners, coefficient x centred value for the "
                    "logistic one, weighted by the stacking meta-learner. base_logit + the "
                    "listed contributions + other == logit. Explaining costs far more than "
                    "scoring; see docs/performance.md."
                ),
                "parameters": [
                    {
                        "name": "top",
                        "in": "query",
                        "required": False,
                        "description": (
                            "Contributions listed per row: a positive integer (default 10), "
                            "or 'all' for every input and group."
                        ),
                        "schema": {"type": "string", "pattern": "^([1-9][0-9]{0,3}|all)$"},
                    }
                ],
                "requestBody": _ROWS_BODY,
                "responses": {
                    "200": {
                        "description": "One explanation per row, in input order.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": _ref("Explanation"),
                                }
                            }
                        },
                    },
                    **_ROWS_ERRORS,
                    "413": _error_response(
                        "Body or row count over the configured limit, or an answer (rows x "
                        "top) larger than the gateway's memory budget."
                    ),
                    "501": _error_response("The inference server does not explain its scores."),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness of the gateway process",
                "responses": {
                    "200": _json_answer("Alive.", _ref("Health")),
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the model is reachable and ready",
                "responses": {
                    "200": _json_answer("Ready to score.", _ref("Readiness")),
                    "503": _error_response("Not ready.", retry_after=True),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        **_OIP_PATHS,
    },
    "components": {
        "schemas": {
            "Row": {
                "type": "object",
                "description": "Column name -> value; every value optional.",
                "additionalProperties": {"type": ["string", "number", "null"]},
            },
            **schemas(),
        }
    },
}
"""The OpenAPI document of the gateway."""
