"""Loading versions in process: the version a load names, the checks, swaps and leases."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from inference.dataplane import ModelNotFoundError, ModelUnavailableError
from inference.metrics import Metrics
from inference.rollout import LoadBusyError, LoadError, Rollout, verify
from inference.servicer import requested_version
from modeling.bundle import MANIFEST
from modeling.repository import Repository
from proto import inference_pb2 as pb
from proto.codec import CodecError
from tests.unit.test_inference_servicer import data_plane, rows


def parameters(**values: object) -> dict[str, pb.ModelRepositoryParameter]:
    found = {}
    for name, value in values.items():
        parameter = pb.ModelRepositoryParameter()
        if isinstance(value, int):
            parameter.int64_param = value
        else:
            parameter.string_param = str(value)
        found[name] = parameter
    return found


@pytest.mark.parametrize(
    ("given", "version"),
    [
        ({}, ""),
        ({"version": "3"}, "3"),
        ({"version": 4}, "4"),
        ({"config": ""}, ""),
        ({"config": '{"version_policy": {"specific": {"versions": [2]}}}'}, "2"),
        ({"config": '{"version_policy": {"latest": {"num_versions": 1}}}'}, ""),
    ],
)
def test_the_version_a_load_names(given: dict[str, object], version: str) -> None:
    assert requested_version(parameters(**given)) == version


@pytest.mark.parametrize(
    "config", ["{", "[1]", '{"version_policy": {"specific": {"versions": [1, 2]}}}']
)
def test_a_config_that_names_no_single_version_is_refused(config: str) -> None:
    with pytest.raises(CodecError):
        requested_version(parameters(config=config))


@pytest.fixture
def repository(model_repository: Path, tmp_path: Path) -> Repository:
    root = tmp_path / "scoring"
    shutil.copytree(model_repository, root)
    return Repository(root)


def test_verify_refuses_another_schema(repository: Repository) -> None:
    predictor = repository.load("2")
    assert verify(predictor) >= 0
    predictor.manifest["schema"]["vocabularies"]["x1"] = ["mon"]
    with pytest.raises(LoadError, match="incompatible schema \\(vocabularies differ"):
        verify(predictor)


def test_a_swap_keeps_leased_calls_on_their_version_and_releases_it_after(
    repository: Repository,
) -> None:
    first, second = repository.load("1"), repository.load("2")
    metrics = Metrics()
    swaps: list[tuple[str | None, str | None]] = []
    plane = data_plane(first, on_batch=metrics.observe_batch)
    plane.warm()
    rollout = Rollout(
        plane,
        repository,
        on_swap=lambda new, old: swaps.append(
            (new.version if new else None, old.version if old else None)
        ),
        release_timeout_s=5,
    )
    columns = rows(5)
    with plane._lease() as held:  # a call in flight on version 1
        done = threading.Event()
        loader = threading.Thread(target=lambda: (rollout.load("", "2"), done.set()))
        loader.start()
        while plane.model.version != "2":
            threading.Event().wait(0.01)
        assert not done.wait(0.3)  # the swap waits for the lease before releasing 1
        answer = plane.infer(columns, 5)
        assert answer.model.version == "2"
        expected = second.predict(columns, 5).probability
        np.testing.assert_allclose(answer.outputs["probability"], expected, rtol=0, atol=1e-12)
        assert held.info.version == "1"
        assert held.batcher.submit(columns, 5)  # version 1 still scores its own calls
    assert done.wait(5)
    loader.join(5)
    assert swaps == [("2", "1")]
    assert metrics.registry.get_sample_value("inference_rows_scored_total", {"version": "2"}) == 5
    with pytest.raises(ModelNotFoundError, match="version '1' is not served"):
        plane.infer(columns, 5, version="1")
    plane.close()


def test_loads_one_at_a_time_and_unload(repository: Repository) -> None:
    plane = data_plane(repository.load("1"))
    plane.warm()
    rollout = Rollout(plane, repository)
    with rollout._loading, pytest.raises(LoadBusyError):  # another load holds the lock
        rollout.load("", "2")
    with pytest.raises(ModelNotFoundError):
        rollout.load("other")
    rollout.unload("")
    assert not plane.ready
    with pytest.raises(ModelUnavailableError):
        plane.infer(rows(1), 1)
    states = {s.version: (s.state, s.reason) for s in rollout.index()}
    assert states == {"1": ("UNAVAILABLE", "unloaded"), "2": ("UNAVAILABLE", "not loaded")}
    rollout.load("")  # the latest
    assert plane.ready
    assert plane.model.version == "2"
    manifest = json.loads((repository.path("2") / MANIFEST).read_text())
    assert manifest["version"] == "2"
    plane.close()
