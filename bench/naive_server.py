"""A deliberately naive scoring server: the yardstick of ``docs/performance.md``.

What most take-home submissions serve: Flask's own threaded server, ``json.loads``, a
pandas DataFrame per request and one model call per request (no batching, no gateway,
no gRPC). It scores with the same bundle and the same predictor, so its answers equal
the stack's; only the serving differs. Loopback only.

    python -m bench.naive_server --bundle models/current --port 5101
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from modeling.predictor import Predictor


def create_app(bundle: Path) -> Flask:
    """The naive app around the bundle's predictor."""
    import pandas as pd  # what such servers use; training-side dependency

    predictor = Predictor.from_bundle(bundle)
    app = Flask("naive")

    @app.post("/predict")
    def predict() -> Response:
        data: Any = json.loads(request.data)
        frame = pd.DataFrame(data if isinstance(data, list) else [data])
        columns = {name: frame[name].to_numpy() for name in frame.columns}
        prediction = predictor.predict(columns, len(frame))
        answer = [
            {"class": int(label), "probability": float(probability)}
            for label, probability in zip(prediction.label, prediction.probability, strict=True)
        ]
        return Response(json.dumps(answer), mimetype="application/json")

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.naive_server")
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--port", type=int, default=5101)
    args = parser.parse_args(argv)
    create_app(args.bundle).run(host="127.0.0.1", port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
