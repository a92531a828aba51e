"""Open Inference Protocol v2 requests from string rows, for unit and integration tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modeling.schema import COLUMNS, NUMERIC_COLUMNS
from proto import inference_pb2 as pb
from proto.codec import pack_bytes


def oip_columns(table: dict[str, list[str]]) -> dict[str, NDArray[np.float64] | list[bytes]]:
    """String columns as OIP inputs: numeric ones as float64 ("" -> NaN), text as UTF-8."""
    numeric = frozenset(NUMERIC_COLUMNS)
    return {
        name: (
            np.array([float(v) if v else np.nan for v in values])
            if name in numeric
            else [v.encode() for v in values]
        )
        for name, values in table.items()
    }


def infer_request(
    model: str, columns: dict[str, NDArray[np.float64] | list[bytes]], *, raw: bool = True
) -> pb.ModelInferRequest:
    """A ModelInferRequest with one input per column (FP64 or BYTES by the schema)."""
    numeric = frozenset(NUMERIC_COLUMNS)
    request = pb.ModelInferRequest(model_name=model)
    for name in sorted(columns, key=COLUMNS.index):
        values = columns[name]
        tensor = request.inputs.add(name=name, shape=[len(values)])
        tensor.datatype = "FP64" if name in numeric else "BYTES"
        if raw and name in numeric:
            request.raw_input_contents.append(np.asarray(values, "<f8").tobytes())
        elif raw:
            request.raw_input_contents.append(pack_bytes(values))  # type: ignore[arg-type]
        elif name in numeric:
            tensor.contents.fp64_contents.extend(values)  # type: ignore[arg-type]
        else:
            tensor.contents.bytes_contents.extend(values)  # type: ignore[arg-type]
    return request
