"""Rolling versions in and out of a real inference server process, under load."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from inference.deploy import main as deploy_main
from modeling.bundle import MANIFEST, sha256_file
from modeling.predictor import Predictor
from modeling.repository import SERVING_FILE, Repository
from modeling.training.synthetic import synthetic_table
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from tests.integration.conftest import ManagedProcess, StartInference
from tests.oip import infer_request, oip_columns

pytestmark = pytest.mark.integration

ROWS = 30


class Load:
    """ModelInfer calls from ``threads`` threads until stopped; every answer checked.

    Each answer must name one version and carry exactly that version's in-process
    probabilities: a batch scored by one version but answered as another, or a call
    split over two, fails the check.
    """

    def __init__(self, port: int, predictors: dict[str, Predictor], threads: int = 8) -> None:
        table, _ = synthetic_table(ROWS * threads, seed=5)
        self._columns = oip_columns(table)
        self._expected = {
            v: p.predict(self._columns, ROWS * threads).probability for v, p in predictors.items()
        }
        self._name = next(iter(predictors.values())).name
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        self._stop = threading.Event()
        self.answers: dict[str, int] = {}
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        part = slice(index * ROWS, (index + 1) * ROWS)
        columns = {name: values[part] for name, values in self._columns.items()}
        request = infer_request(self._name, columns)
        while not self._stop.is_set():
            try:
                response = self._stub.ModelInfer(request, timeout=30)
            except grpc.RpcError as error:
                with self._lock:
                    self.failures.append(f"{error.code().name}: {error.details()}")
                continue
            got = np.frombuffer(response.raw_output_contents[0], "<f8")
            expected = self._expected.get(response.model_version)
            with self._lock:
                if expected is None or not np.allclose(got, expected[part], rtol=0, atol=1e-12):
                    self.failures.append(f"answer of version {response.model_version!r} mismatched")
                self.answers[response.model_version] = (
                    self.answers.get(response.model_version, 0) + 1
                )

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        self._channel.close()

    def count(self, version: str) -> int:
        """Answers given by ``version`` so far."""
        with self._lock:
            return self.answers.get(version, 0)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not condition():
            if deadline.wait(0.05):
                pytest.fail(f"timed out waiting for {what}")
    finally:
        timer.cancel()


@pytest.fixture
def predictors(model_repository: Path) -> dict[str, Predictor]:
    repository = Repository(model_repository)
    return {v: repository.load(v) for v in repository.versions()}


def stub_of(server: ManagedProcess) -> pb_grpc.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.ports['grpc']}")
    return pb_grpc.GRPCInferenceServiceStub(channel)


def load(stub: pb_grpc.GRPCInferenceServiceStub, version: str) -> None:
    request = pb.RepositoryModelLoadRequest()
    request.parameters["version"].string_param = version
    stub.RepositoryModelLoad(request, timeout=60)


def serving_version(stub: pb_grpc.GRPCInferenceServiceStub) -> str:
    return stub.ModelMetadata(pb.ModelMetadataRequest(), timeout=5).versions[0]


def test_the_two_versions_differ(predictors: dict[str, Predictor]) -> None:
    assert sorted(predictors) == ["1", "2"]
    assert {p.name for p in predictors.values()} == {"scoring"}
    table, _ = synthetic_table(50, seed=3)
    first, second = (predictors[v].predict(oip_columns(table), 50).probability for v in "12")
    assert np.abs(first - second).max() > 1e-3  # so an answer names its version unmistakably


def test_roll_forward_and_back_under_load_answers_each_call_with_one_version(
    start_inference: StartInference, model_repository: Path, predictors: dict[str, Predictor]
) -> None:
    server = start_inference(model_repository, "--model-version", "1")
    stub = stub_of(server)
    assert serving_version(stub) == "1"
    client = triton.InferenceServerClient(f"127.0.0.1:{server.ports['grpc']}")
    with Load(server.ports["grpc"], predictors) as traffic:
        for version in ("2", "1", "2"):
            before = traffic.count(version)
            if version == "2":  # tritonclient's way: the version in Triton's model config
                config = {"version_policy": {"specific": {"versions": [2]}}}
                client.load_model("scoring", config=json.dumps(config))
            else:
                load(stub, version)
            assert serving_version(stub) == version
            wait_for(lambda v=version, n=before: traffic.count(v) > n + 20, f"answers of {version}")
    client.close()
    assert traffic.failures == []
    assert traffic.answers["1"] > 40
    assert traffic.answers["2"] > 40
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=5)
    states = {m.version: (m.state, m.reason) for m in index.models}
    assert states == {"1": ("UNAVAILABLE", "replaced by version 2"), "2": ("READY", "")}
    metrics = server.ports["metrics"]
    text = _metrics(metrics)
    assert 'inference_model_info{model="scoring",version="2"} 1.0' in text
    assert 'inference_model_info{model="scoring",version="1"}' not in text
    assert 'inference_rows_scored_total{version="1"}' in text


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _reseal(bundle: Path, file: str) -> None:
    """Record ``file``'s new hash in the manifest (a bundle broken inside, sealed as valid)."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"][file] = sha256_file(bundle / file)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def _add_version(root: Path, version: str, edit: Callable[[Path], None]) -> None:
    target = root / version
    shutil.copytree(root / "1", target)
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["version"] = version
    (target / MANIFEST).write_text(json.dumps(manifest))
    edit(target)


def _tamper(bundle: Path) -> None:
    with (bundle / "lightgbm.txt").open("a") as stream:
        stream.write("\n")


def _other_schema(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["schema"]["kinds"]["x0"] = "text"
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def _throws(bundle: Path) -> None:
    meta = json.loads((bundle / "meta.json").read_text())
    meta["coef"] = [*meta["coef"], 1.0]  # one weight too many: scoring raises
    (bundle / "meta.json").write_text(json.dumps(meta))
    _reseal(bundle, "meta.json")


def test_a_failed_load_leaves_the_serving_version_answering(
    start_inference: StartInference,
    model_repository: Path,
    predictors: dict[str, Predictor],
    tmp_path: Path,
) -> None:
    root = tmp_path / "scoring"
    shutil.copytree(model_repository, root)
    _add_version(root, "3", _tamper)
    _add_version(root, "4", _other_schema)
    _add_version(root, "5", _throws)
    _add_version(root, "6", lambda bundle: None)
    manifest = json.loads((root / "6" / MANIFEST).read_text())
    (root / "6" / MANIFEST).write_text(json.dumps(manifest | {"version": "2"}))
    server = start_inference(root, "--model-version", "2")
    stub = stub_of(server)
    reasons = {
        "3": "sha256 of lightgbm.txt does not match",
        "4": "incompatible schema (kinds differ",
        "5": "failed its probe batch: ValueError",
        "6": "holds a bundle of version '2'",
        "": "",  # the latest is 6: refused too
        "7": "no model bundle at",
        "../1": "not a positive integer",
    }
    with Load(server.ports["grpc"], {"2": predictors["2"]}) as traffic:
        for version, reason in reasons.items():
            with pytest.raises(grpc.RpcError) as refused:
                load(stub, version)
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert reason in refused.value.details()
            assert "version 2 still serves" in refused.value.details()
            assert serving_version(stub) == "2"
        wait_for(lambda: traffic.count("2") > 40, "answers of version 2")
    assert traffic.failures == []
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=5)
    states = {m.version: (m.state, m.reason) for m in index.models}
    assert states["2"] == ("READY", "")
    assert states["1"] == ("UNAVAILABLE", "not loaded")
    assert states["5"][0] == "UNAVAILABLE"
    assert "probe" in states["5"][1]
    ready = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=5)
    assert [m.version for m in ready.models] == ["2"]


def test_unload_then_load_and_the_latest_by_default(
    start_inference: StartInference, model_repository: Path, tmp_path: Path
) -> None:
    root = tmp_path / "scoring"
    shutil.copytree(model_repository, root)
    (root / SERVING_FILE).write_text("1\n")  # what a server starts with, once rolled back
    server = start_inference(root)
    stub = stub_of(server)
    assert serving_version(stub) == "1"
    client = triton.InferenceServerClient(f"127.0.0.1:{server.ports['grpc']}")
    assert "model_repository" in client.get_server_metadata(as_json=True)["extensions"]
    client.unload_model("scoring")
    assert not client.is_model_ready("scoring")
    assert not client.is_server_ready()
    table, _ = synthetic_table(3, seed=1)
    with pytest.raises(grpc.RpcError) as unloaded:
        stub.ModelInfer(infer_request("scoring", oip_columns(table)), timeout=5)
    assert unloaded.value.code() is grpc.StatusCode.UNAVAILABLE
    client.load_model("scoring")  # no version named: the latest
    assert client.is_model_ready("scoring")
    assert serving_version(stub) == "2"
    with pytest.raises(InferenceServerException, match="not in this server's repository"):
        client.load_model("other")
    with pytest.raises(InferenceServerException, match="at most one version"):
        client.load_model("scoring", config=json.dumps({"version_policy": {"specific": {
            "versions": [1, 2]}}}))  # fmt: skip
    client.close()


def test_a_server_of_one_bundle_refuses_loads(
    start_inference: StartInference, quick_bundle: Path
) -> None:
    server = start_inference(quick_bundle)
    stub = stub_of(server)
    with pytest.raises(grpc.RpcError) as refused:
        load(stub, "2")
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "--repository" in refused.value.details()
    meta = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=5)
    assert list(meta.extensions) == []


def test_the_deploy_command_rolls_every_replica_and_records_the_version(
    start_inference: StartInference,
    model_repository: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "scoring"
    shutil.copytree(model_repository, root)
    replicas = [start_inference(root, "--model-version", "1") for _ in range(2)]
    targets = [arg for r in replicas for arg in ("--target", f"localhost:{r.ports['grpc']}")]
    assert deploy_main(["--version", "2", *targets, "--repository", str(root)]) == 0
    assert {serving_version(stub_of(r)) for r in replicas} == {"2"}
    assert (root / SERVING_FILE).read_text() == "2\n"
    assert Repository(root).serving() == "2"
    printed = capsys.readouterr().out
    assert f"127.0.0.1:{replicas[1].ports['grpc']} serves version 2" in printed
    assert deploy_main(["--version", "9", *targets, "--repository", str(root)]) == 1
    assert "refused version 9 (FAILED_PRECONDITION)" in capsys.readouterr().err
    assert (root / SERVING_FILE).read_text() == "2\n"  # a refused rollout records nothing
    assert {serving_version(stub_of(r)) for r in replicas} == {"2"}
    assert deploy_main(["--version", "1", *targets]) == 0  # the rollback
    assert {serving_version(stub_of(r)) for r in replicas} == {"1"}
    assert deploy_main(["--version", "../1", *targets]) == 2


def _sample(text: str, name: str) -> float:
    """The value of one sample (name and labels as printed) on a /metrics page."""
    (value,) = (line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " "))
    return float(value)


def test_drift_is_measured_against_the_serving_version_s_profile(
    start_inference: StartInference, model_repository: Path, predictors: dict[str, Predictor]
) -> None:
    """After a swap the drift window starts again, against the new version's training data."""
    profiles = {v: p.profile for v, p in predictors.items()}
    assert profiles["1"] is not None
    assert profiles["2"] is not None
    assert profiles["1"].score_mean != profiles["2"].score_mean
    server = start_inference(model_repository, "--model-version", "1")
    stub, metrics = stub_of(server), server.ports["metrics"]
    table, _ = synthetic_table(200, seed=9)
    request = infer_request("scoring", oip_columns(table))

    def window_rows(expected: int) -> bool:
        return _sample(_metrics(metrics), "inference_drift_window_rows") == expected

    stub.ModelInfer(request, timeout=30)
    wait_for(lambda: window_rows(200), "200 rows in the drift window")
    reference = "inference_drift_reference_score_mean"
    assert _sample(_metrics(metrics), reference) == pytest.approx(profiles["1"].score_mean)

    load(stub, "2")
    text = _metrics(metrics)
    assert _sample(text, reference) == pytest.approx(profiles["2"].score_mean)
    assert _sample(text, "inference_drift_window_rows") == 0  # version 1's rows are gone
    stub.ModelInfer(request, timeout=30)
    wait_for(lambda: window_rows(200), "version 2's rows in the drift window")
    # The served-probability histogram is cumulative (a Prometheus histogram): it goes on.
    assert _sample(_metrics(metrics), "inference_scored_probability_count") == 400
