"""The REST contract as an OpenAPI 3.1 document (static; served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

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

_ERROR = {"$ref": "#/components/schemas/Error"}


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
                    {"$ref": "#/components/schemas/Row"},
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/components/schemas/Row"},
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
_ROWS_ERRORS: dict[str, Any] = {
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
_CONTRIBUTION = {
    "type": "object",
    "required": ["feature", "contribution"],
    "properties": {
        "feature": {"type": "string", "description": "An input column, or a group of them."},
        "contribution": {"type": "number", "description": "Its share of the row's logit."},
        "columns": {
            "type": "array",
            "items": {"type": "string"},
            "description": "For a group (a feature read from several columns): those columns.",
        },
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Exercise 06 scoring API",
        "version": "1.0.0",
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
                                    "items": {"$ref": "#/components/schemas/Prediction"},
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
                                    "items": {"$ref": "#/components/schemas/Explanation"},
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
                    "200": {
                        "description": "Alive.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the model is reachable and ready",
                "responses": {
                    "200": {
                        "description": "Ready to score.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
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
    },
    "components": {
        "schemas": {
            "Row": {
                "type": "object",
                "description": "Column name -> value; every value optional.",
                "additionalProperties": {"type": ["string", "number", "null"]},
            },
            "Prediction": {
                "type": "object",
                "required": ["class", "probability"],
                "properties": {
                    "class": {
                        "type": "integer",
                        "enum": [0, 1],
                        "description": "1 when probability reaches the model's threshold.",
                    },
                    "probability": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "P(y = 1), the probability of the positive class.",
                    },
                },
            },
            "Explanation": {
                "type": "object",
                "required": [
                    "class",
                    "probability",
                    "logit",
                    "base_logit",
                    "contributions",
                    "other",
                ],
                "properties": {
                    "class": {"type": "integer", "enum": [0, 1]},
                    "probability": {"type": "number", "minimum": 0, "maximum": 1},
                    "logit": {"type": "number", "description": "log(p / (1 - p))."},
                    "base_logit": {"type": "number", "description": "What no input explains."},
                    "contributions": {"type": "array", "items": _CONTRIBUTION},
                    "other": {
                        "type": "number",
                        "description": "The sum of the contributions not listed.",
                    },
                },
            },
            "Error": {
                "type": "object",
                "required": ["error", "details"],
                "properties": {
                    "error": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "row": {"type": ["integer", "null"]},
                                "field": {"type": ["string", "null"]},
                                "value": {},
                                "reason": {"type": "string"},
                            },
                        },
                    },
                },
            },
        }
    },
}
"""The OpenAPI document of the gateway."""
