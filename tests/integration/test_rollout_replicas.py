"""Mid-rollout: two replicas behind one gateway, serving two versions for a while.

``inference.deploy`` swaps replica after replica, so for a moment one replica serves the new
version and another the old. A call the gateway splits into chunks is round-robined over
both; the chunks answered by the other version are sent again pinned to one version, and
those round robin sent to the replica that does not serve it (NOT_FOUND) are sent again,
until the one that does answers: the call is answered by one version, never with two
versions' rows. Only when no replica serves a version any more does it give way.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from modeling.training.synthetic import synthetic_records
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from tests.containers.scores import assert_same_scores, expected_scores
from tests.integration.conftest import StartInference, wait_until
from tests.integration.gateway_helpers import JSON, Gateways, request

pytestmark = pytest.mark.integration

VERSION = "X-Model-Version"
CHUNK_ROWS = 50
ROWS = synthetic_records(8 * CHUNK_ROWS, seed=41)
LARGE = json.dumps(ROWS).encode()  # 8 chunks
SMALL = json.dumps(synthetic_records(3, seed=42)).encode()  # 1 chunk


def predict(port: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return request(port, "POST", "/predict", body, JSON)


def test_a_call_split_over_replicas_on_two_versions_is_answered_by_one(
    start_inference: StartInference, model_repository: Path, tmp_path: Path
) -> None:
    old = start_inference(model_repository, "--model-version", "1")
    new = start_inference(model_repository, "--model-version", "2")
    gateways = Gateways(tmp_path)
    try:
        gateway = gateways.start(
            f"ipv4:127.0.0.1:{old.ports['grpc']},127.0.0.1:{new.ports['grpc']}",
            GATEWAY_CHUNK_ROWS=str(CHUNK_ROWS),
            GATEWAY_WORKERS="1",  # one channel: round robin alternates over both replicas
        )
        port = gateway.ports["http"]
        seen: set[str] = set()

        def both_replicas_answer() -> bool:
            status, headers, body = predict(port, SMALL)
            assert status == 200, body  # a one-chunk call is one version's, whichever
            seen.add(headers[VERSION])
            return seen == {"1", "2"}

        wait_until(both_replicas_answer, 30, "answers from both replicas")

        for _ in range(5):  # each time over both replicas, whichever version wins
            status, headers, body = predict(port, LARGE)
            assert status == 200, body[:300]
            assert headers[VERSION] in {"1", "2"}
            assert_same_scores(
                json.loads(body), expected_scores(model_repository / headers[VERSION], ROWS)
            )

        # Once the rollout reaches the other replica, the split call is version 2's.
        with grpc.insecure_channel(f"127.0.0.1:{old.ports['grpc']}") as channel:
            message = pb.RepositoryModelLoadRequest()
            message.parameters["version"].string_param = "2"
            pb_grpc.GRPCInferenceServiceStub(channel).RepositoryModelLoad(message, timeout=60)
        status, headers, body = predict(port, LARGE)
        assert status == 200, body[:300]
        assert headers[VERSION] == "2"
        assert_same_scores(json.loads(body), expected_scores(model_repository / "2", ROWS))
    finally:
        gateways.stop_all()
