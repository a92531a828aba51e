"""A call survives a dying inference backend: the gateway's channel, two real servers.

The channel is the gateway's own (``gateway.client.CHANNEL_OPTIONS``: round robin,
gRPC's retries), over two server processes; one is stopped (SIGTERM: it drains and
exits, as a replica does when compose or Kubernetes stops it) while 4,000-row calls,
long enough to be in flight then, keep coming. No call may fail: the calls the dying
server accepted complete, and new ones go to the other server (gRPC retries on its own
the attempts the dying server refused before its application saw them). The test
fails when in-flight calls are dropped: with --grace-s 0, 3 of 80 calls failed here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from gateway.client import CHANNEL_OPTIONS
from modeling.predictor import Predictor
from modeling.training.synthetic import synthetic_table
from proto import inference_pb2_grpc as pb_grpc
from tests.integration.conftest import StartInference, infer_request, oip_columns, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CALLS, CLIENTS, ROWS = 80, 4, 4000


def test_calls_survive_a_backend_that_stops(
    start_inference: StartInference, inference_bundle: Path
) -> None:
    dying, staying = start_inference(inference_bundle), start_inference(inference_bundle)
    target = f"ipv4:127.0.0.1:{dying.ports['grpc']},127.0.0.1:{staying.ports['grpc']}"
    table, _ = synthetic_table(ROWS, seed=5)
    request = infer_request(Predictor.from_bundle(inference_bundle).name, oip_columns(table))
    outcomes: list[str] = []
    lock = threading.Lock()

    with grpc.insecure_channel(target, options=list(CHANNEL_OPTIONS)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def client() -> None:
            while True:
                with lock:
                    if len(outcomes) >= CALLS:
                        return
                    outcomes.append("pending")
                    index = len(outcomes) - 1
                try:
                    reply = stub.ModelInfer(request, timeout=30)
                    outcomes[index] = "ok" if reply.outputs[0].shape[0] == ROWS else "short"
                except grpc.RpcError as error:
                    outcomes[index] = error.code().name

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(outcomes) >= CALLS // 4, 60, "calls to flow")
        assert dying.stop() == 0  # SIGTERM, drained, clean exit
        stopped_at = len(outcomes)
        for thread in threads:
            thread.join(120)

    assert stopped_at < CALLS, "the load ended before the server stopped: proves nothing"
    failed = [o for o in outcomes if o != "ok"]
    assert not failed, f"{len(failed)} of {len(outcomes)} calls failed: {sorted(set(failed))}"
    assert '"event": "draining"' in dying.log()
